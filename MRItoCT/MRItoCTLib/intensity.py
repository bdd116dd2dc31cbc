"""Fixed intensity maps and the body mask.

CT: HU clipped to [-1024, 3000] and mapped linearly to [-1, 1] (never per-slice
min–max, so absolute HU survive). MRI: scaled by a robust high percentile of the
body voxels of the whole volume, so 0 stays 0 and the scale is one per volume.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

HU_MIN, HU_MAX = -1024.0, 3000.0
HU_RANGE = HU_MAX - HU_MIN


def hu_to_unit(hu: np.ndarray) -> np.ndarray:
    """HU -> [-1, 1]."""
    return (np.clip(hu, HU_MIN, HU_MAX) - HU_MIN) / HU_RANGE * 2.0 - 1.0


def unit_to_hu(unit):
    """[-1, 1] -> HU (works on numpy arrays and torch tensors)."""
    return (unit + 1.0) * 0.5 * HU_RANGE + HU_MIN


def unit_std_to_hu(std):
    """A standard deviation on the [-1, 1] scale -> HU."""
    return std * 0.5 * HU_RANGE


def normalize_mri(mri: np.ndarray, mask: np.ndarray, percentile: float = 99.5) -> np.ndarray:
    """MRI -> roughly [-1, 1]: 0 maps to -1, the ``percentile`` of body voxels to +1; clipped at 1.5."""
    inside = mri[mask] if mask.any() else mri.ravel()
    scale = float(np.percentile(inside, percentile))
    if scale <= 0:
        scale = float(mri.max()) or 1.0
    return np.clip(mri / scale * 2.0 - 1.0, -1.0, 1.5).astype(np.float32)


def _smoothed(image: sitk.Image) -> sitk.Image:
    width = 2.0 * min(image.GetSpacing()[:2])  # mm, in-plane only
    return sitk.DiscreteGaussian(sitk.Cast(image, sitk.sitkFloat32), [width**2, width**2, 0.0], 32, 0.01, True)


def _largest_filled(binary: sitk.Image, image: sitk.Image) -> sitk.Image:
    components = sitk.RelabelComponent(sitk.ConnectedComponent(binary), sortByObjectSize=True)
    largest = sitk.Cast(components == 1, sitk.sitkUInt8)
    radius = [max(1, int(round(3.0 / s))) for s in image.GetSpacing()[:2]] + [0]
    return fill_holes_per_slice(sitk.BinaryMorphologicalClosing(largest, radius))


def foreground_mask(image: sitk.Image) -> sitk.Image:
    """Bright MRI signal (Otsu on the smoothed image, largest component, holes filled): sets the MRI scale."""
    return _largest_filled(sitk.OtsuThreshold(_smoothed(image), 0, 1), image)


def body_mask(image: sitk.Image, fraction: float = 0.06) -> sitk.Image:
    """The patient's body in an MRI: everything above ``fraction`` of the bright signal (dark muscle included,
    air excluded), largest component, holes (bone, gas) filled; works when the field of view cuts the body."""
    smooth = _smoothed(image)
    threshold = fraction * float(np.percentile(sitk.GetArrayViewFromImage(smooth), 99.5))
    return _largest_filled(sitk.Cast(smooth > threshold, sitk.sitkUInt8), image)


def fill_holes_per_slice(mask: sitk.Image) -> sitk.Image:
    """Fill enclosed holes in each axial plane of a binary mask (gas in the bowel stays body)."""
    planes = sitk.GetArrayFromImage(mask)
    for k in range(planes.shape[0]):
        planes[k] = sitk.GetArrayFromImage(sitk.BinaryFillhole(sitk.GetImageFromArray(planes[k])))
    filled = sitk.GetImageFromArray(planes)
    filled.CopyInformation(mask)
    return filled


def looks_like_ct(array: np.ndarray) -> bool:
    """True when intensities look like HU (a large share near -1000 and values far below zero)."""
    return float(np.percentile(array, 5)) < -500 and float(array.min()) <= -900
