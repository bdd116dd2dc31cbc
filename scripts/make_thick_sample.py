"""Make SliceInterp's sample: a thick-slice CT from the shipped thin 1.5 mm TotalSegmentator chest CT.

Every three consecutive 1.5 mm slices are averaged into one 4.5 mm slice centred on the middle one (a box
slice profile, as a thick reconstruction of the same scan would give), stored as int16 HU. That thin CT is
not one of the cross-view network's training volumes, so the sample is not a training volume either, and the
thin original is its ground truth. Also writes the 128 x 128 coronal thumbnail for Slicer's Sample Data module.

    python scripts/make_thick_sample.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk
from PIL import Image

from MRItoCTLib.research.ct_pairs import slice_profile

SAMPLES = Path(__file__).resolve().parents[1] / "Resources" / "SampleData"
THIN, THICK, THUMBNAIL = "totalseg_aorta_ct_1p5mm.nii.gz", "totalseg_aorta_ct_4p5mm.nii.gz", "ct_chest_thick_4p5mm.png"
GROUP = 3


def thick_slices(thin: sitk.Image, group: int = GROUP) -> sitk.Image:
    """Average each ``group`` consecutive slices (array axis 0) into one; the remainder at the end is dropped."""
    averaged = slice_profile(sitk.GetArrayFromImage(thin).astype(np.float32), group)
    thick = sitk.GetImageFromArray(np.round(averaged).astype(np.int16))
    spacing = thin.GetSpacing()
    thick.SetSpacing((spacing[0], spacing[1], spacing[2] * group))
    thick.SetDirection(thin.GetDirection())
    thick.SetOrigin(thin.TransformContinuousIndexToPhysicalPoint((0.0, 0.0, (group - 1) / 2)))
    return thick


def coronal_thumbnail(image: sitk.Image, size: int = 128) -> Image.Image:
    """The middle coronal slice at a soft-tissue window (W400/L40), physical aspect, on a square canvas."""
    values = sitk.GetArrayFromImage(image)[:, image.GetSize()[1] // 2, :][::-1]
    grey = (np.clip((values + 160.0) / 400.0, 0, 1) * 255).astype(np.uint8)
    height_mm, width_mm = values.shape[0] * image.GetSpacing()[2], values.shape[1] * image.GetSpacing()[0]
    scale = size / max(height_mm, width_mm)
    picture = Image.fromarray(grey).resize((round(width_mm * scale), round(height_mm * scale)), Image.BILINEAR)
    canvas = Image.new("L", (size, size))
    canvas.paste(picture, ((size - picture.width) // 2, (size - picture.height) // 2))
    return canvas


def main() -> None:
    thick = thick_slices(sitk.ReadImage(str(SAMPLES / THIN)))
    sitk.WriteImage(thick, str(SAMPLES / THICK), useCompression=True)
    coronal_thumbnail(thick).save(SAMPLES / THUMBNAIL)
    print(f"wrote {THICK}: {thick.GetSize()} at {thick.GetSpacing()} mm, and {THUMBNAIL}")


if __name__ == "__main__":
    main()
