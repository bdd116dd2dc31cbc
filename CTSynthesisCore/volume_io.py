"""Reading, checking and writing volumes with SimpleITK, keeping their geometry.

Every engine takes and returns ``SimpleITK.Image`` objects in LPS physical space.
Writes are atomic (temporary file, then rename), so a failed or cancelled run
never leaves a partial output behind.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .errors import UserInputError

VOLUME_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd", ".dcm")


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def read_volume(path: str | os.PathLike) -> sitk.Image:
    """Read a volume file (NIfTI, NRRD, MHA, ...) or a DICOM series folder."""
    path = Path(path)
    if not path.exists():
        raise UserInputError(f"input not found: {path}")
    try:
        if path.is_dir():
            return _read_dicom_series(path)
        return sitk.ReadImage(str(path))
    except RuntimeError as error:
        detail = str(error).strip().splitlines()
        reason = next((line.strip() for line in detail if "ERROR" in line or "Unable" in line), "")
        raise UserInputError(f"cannot read {path}: not a readable image{(' (' + reason[:120] + ')') if reason else ''}") from None


def _read_dicom_series(folder: Path) -> sitk.Image:
    series = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder))
    if not series:
        raise UserInputError(f"no DICOM series found in folder {folder}")
    if len(series) > 1:
        raise UserInputError(f"folder {folder} holds {len(series)} DICOM series; give a folder with one")
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder), series[0]))
    reader.MetaDataDictionaryArrayUpdateOn()
    reader.LoadPrivateTagsOff()
    image = reader.Execute()
    for key in reader.GetMetaDataKeys(0):
        image.SetMetaData(key, reader.GetMetaData(0, key))
    return image


def check_scalar_volume(image: sitk.Image, what: str = "input", min_slices: int = 1) -> None:
    """Refuse images that are not 3D, not scalar, empty, or hold NaN/Inf voxels."""
    if image.GetDimension() != 3:
        raise UserInputError(f"{what} must be a 3D volume, got a {image.GetDimension()}D image")
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise UserInputError(
            f"{what} must be a scalar volume, got {image.GetNumberOfComponentsPerPixel()} components per voxel"
        )
    size = image.GetSize()
    if min(size) < 1 or np.prod(size) == 0:
        raise UserInputError(f"{what} is empty (size {size})")
    if size[2] < min_slices:
        raise UserInputError(f"{what} has {size[2]} slice(s); at least {min_slices} are needed")
    array = sitk.GetArrayViewFromImage(image)
    if np.issubdtype(array.dtype, np.floating):
        finite = np.isfinite(array)
        if not finite.all():
            bad = int(array.size - finite.sum())
            raise UserInputError(f"{what} holds {bad} NaN or infinite voxel(s); fix or mask them first")
        if np.abs(array).max() > 1e15:
            raise UserInputError(f"{what} holds extreme values (|value| up to {np.abs(array).max():.3g})")


def check_output_path(output: str | os.PathLike, inputs: tuple[str | os.PathLike, ...] = ()) -> Path:
    """Check that an output can be written there and does not overwrite an input."""
    output = Path(output)
    for source in inputs:
        if output.resolve() == Path(source).resolve():
            raise UserInputError(f"output {output} is the input file; choose another output path")
    parent = output if output.is_dir() else output.parent  # a new folder output (DICOM series) needs its parent
    if not parent.exists():
        raise UserInputError(f"output folder does not exist: {parent}")
    if not os.access(parent, os.W_OK):
        raise UserInputError(f"output folder is not writable: {parent}")
    if output.suffix and _suffix(output) not in VOLUME_SUFFIXES:
        raise UserInputError(f"unsupported output format '{output.suffix}' (use one of {', '.join(VOLUME_SUFFIXES)})")
    return output


def write_volume(image: sitk.Image, path: str | os.PathLike, compress: bool = True) -> Path:
    """Write atomically: to a temporary file beside the target, then rename over it."""
    path = Path(path)
    suffix = _suffix(path)
    handle, temporary = tempfile.mkstemp(prefix=".partial-", suffix=suffix, dir=path.parent)
    os.close(handle)
    try:
        sitk.WriteImage(image, temporary, compress)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def same_geometry(a: sitk.Image, b: sitk.Image, tolerance: float = 1e-6) -> bool:
    """True when both images share size, spacing, origin and direction."""
    return (
        a.GetSize() == b.GetSize()
        and np.allclose(a.GetSpacing(), b.GetSpacing(), atol=tolerance)
        and np.allclose(a.GetOrigin(), b.GetOrigin(), atol=tolerance)
        and np.allclose(a.GetDirection(), b.GetDirection(), atol=tolerance)
    )
