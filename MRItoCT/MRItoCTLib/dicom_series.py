"""Writing the synthetic CT as a DICOM CT series a planning system can import."""

from __future__ import annotations

import shutil
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import SimpleITK as sitk

SERIES_DESCRIPTION = "Synthetic CT from MRI - research use only, not for clinical use"
IDENTITY_TAGS = ("0010|0010", "0010|0020", "0010|0030", "0010|0040", "0020|000d", "0020|0010", "0008|0020",
                 "0008|0050", "0020|0052")


def new_uid() -> str:
    """A DICOM UID under the UUID-derived root 2.25."""
    return f"2.25.{uuid.uuid4().int}"


def write_ct_series(ct_hu: sitk.Image, folder: str | Path, source: sitk.Image | None = None) -> Path:
    """Write one file per slice (signed 16-bit HU, rescale slope 1 and intercept 0), atomically.

    Patient, study and frame-of-reference identifiers are taken from ``source`` when it
    came from DICOM; otherwise new ones are made.
    """
    folder = Path(folder)
    stored = sitk.Cast(sitk.Clamp(sitk.Round(ct_hu), lowerBound=-32768.0, upperBound=32767.0), sitk.sitkInt16)
    series_uid, date = new_uid(), time.strftime("%Y%m%d")
    shared = {
        "0008|0060": "CT",
        "0008|0008": "DERIVED\\SECONDARY",
        "0008|103e": SERIES_DESCRIPTION,
        "0020|000e": series_uid,
        "0020|0011": "9001",
        "0008|0021": date,
        "0028|1052": "0",
        "0028|1053": "1",
        "0028|1054": "HU",
        "0010|0010": "ANONYMOUS",
        "0010|0020": "SYNTHETIC",
        "0020|000d": new_uid(),
        "0020|0052": new_uid(),
    }
    if source is not None:
        shared.update({tag: source.GetMetaData(tag) for tag in IDENTITY_TAGS if source.HasMetaDataKey(tag)})
    direction = np.array(ct_hu.GetDirection()).reshape(3, 3)
    orientation = "\\".join(f"{v:.6f}" for v in list(direction[:, 0]) + list(direction[:, 1]))
    staging = Path(tempfile.mkdtemp(prefix=".partial-dicom-", dir=folder.parent if not folder.exists() else folder))
    try:
        writer = sitk.ImageFileWriter()
        writer.KeepOriginalImageUIDOn()
        for k in range(stored.GetSize()[2]):
            plane = stored[:, :, k]
            for tag, value in shared.items():
                plane.SetMetaData(tag, value)
            position = ct_hu.TransformIndexToPhysicalPoint((0, 0, k))
            plane.SetMetaData("0020|0032", "\\".join(f"{v:.6f}" for v in position))
            plane.SetMetaData("0020|0037", orientation)
            plane.SetMetaData("0020|0013", str(k + 1))
            plane.SetMetaData("0018|0050", f"{ct_hu.GetSpacing()[2]:.6f}")
            plane.SetMetaData("0008|0018", new_uid())
            writer.SetFileName(str(staging / f"CT{k + 1:04d}.dcm"))
            writer.Execute(plane)
        folder.mkdir(parents=True, exist_ok=True)
        for path in sorted(staging.iterdir()):
            path.replace(folder / path.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder
