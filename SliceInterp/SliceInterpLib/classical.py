"""Classical slice interpolation (what Slicer's Resample Scalar Volume offers) along the slice axis.

The slice axis is the image's third index axis, whatever its direction matrix;
the in-plane grid, the direction and the first slice's position are kept.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from CTSynthesisCore.errors import UserInputError

INTERPOLATORS = {
    "linear": sitk.sitkLinear,
    "cubic": sitk.sitkBSpline,
    "sinc": sitk.sitkWelchWindowedSinc,
}


def finer_grid(image: sitk.Image, slice_spacing: float) -> sitk.Image:
    """An empty image on the same in-plane grid with slices every ``slice_spacing`` mm from the first one."""
    extent = (image.GetSize()[2] - 1) * image.GetSpacing()[2]
    count = int(np.floor(extent / slice_spacing + 1e-6)) + 1
    reference = sitk.Image(image.GetSize()[0], image.GetSize()[1], count, image.GetPixelID())
    reference.SetOrigin(image.GetOrigin())
    reference.SetDirection(image.GetDirection())
    reference.SetSpacing((image.GetSpacing()[0], image.GetSpacing()[1], slice_spacing))
    return reference


def check_factor(factor: int) -> int:
    """An integer slice factor from 2 to 8, or a user error."""
    if not 2 <= factor <= 8:
        raise UserInputError(f"factor must be an integer from 2 to 8, got {factor}")
    return factor


def cast_like(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Interpolated values in the input's pixel type (integers rounded and clipped to the type's range)."""
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return np.clip(np.rint(values), info.min, info.max).astype(dtype)
    return values.astype(dtype)


def resolve_factor(image: sitk.Image, factor: int | None, spacing: float | None) -> tuple[float, int | None]:
    """Target slice spacing and, when it divides the old spacing, the integer factor."""
    if (factor is None) == (spacing is None):
        raise UserInputError("give exactly one of --factor and --spacing")
    old = image.GetSpacing()[2]
    if factor is not None:
        return old / check_factor(factor), factor
    if spacing <= 0 or spacing >= old:
        raise UserInputError(f"target spacing must be positive and below the current {old:g} mm, got {spacing:g}")
    ratio = old / spacing
    return spacing, int(round(ratio)) if abs(ratio - round(ratio)) < 1e-6 else None


def upsample_classical(image: sitk.Image, slice_spacing: float, method: str) -> sitk.Image:
    """Resample along the slice axis with a classical interpolator; observed slices are copied exactly."""
    if method not in INTERPOLATORS:
        raise UserInputError(f"unknown method '{method}' (choose from {', '.join(INTERPOLATORS)})")
    reference = finer_grid(image, slice_spacing)
    result = sitk.Resample(image, reference, sitk.Transform(), INTERPOLATORS[method], 0.0, sitk.sitkFloat32)
    values = sitk.GetArrayFromImage(result)
    source = sitk.GetArrayViewFromImage(image)
    ratio = image.GetSpacing()[2] / slice_spacing
    if abs(ratio - round(ratio)) < 1e-6:
        values[:: int(round(ratio))] = source
    output = sitk.GetImageFromArray(cast_like(values, source.dtype))
    output.CopyInformation(reference)
    return output
