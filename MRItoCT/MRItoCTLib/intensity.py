"""The intensity mapping of a model, and the MRI body mask.

CT: HU clipped to [hu_min, hu_max] and mapped linearly to [-1, 1] (never per-slice
min–max, so absolute HU survive). MRI: scaled by a robust high percentile of the
body voxels of the whole volume, so 0 stays 0 and the scale is one per volume.
Both are one versioned :class:`IntensityMapping`, stored in each model's metadata and
read back by ``load_model``, so training and synthesis always use the same one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import SimpleITK as sitk

from CTSynthesisCore.errors import UserInputError

INTENSITY_VERSION = 1


@dataclass(frozen=True)
class IntensityMapping:
    """MRI normalisation and the HU <-> [-1, 1] map of a model (version 1)."""

    version: int = INTENSITY_VERSION
    hu_min: float = -1024.0
    hu_max: float = 3000.0
    mri_percentile: float = 99.5  # of the body's bright MRI voxels: the reference intensity
    mri_max: float = 1.5  # normalised MRI is clipped to [-1, mri_max]
    mri_reference_unit: float = 1.0  # what the reference intensity maps to (0 stays -1)

    @property
    def hu_range(self) -> float:
        return self.hu_max - self.hu_min

    def hu_to_unit(self, hu: np.ndarray) -> np.ndarray:
        """HU -> [-1, 1]."""
        return (np.clip(hu, self.hu_min, self.hu_max) - self.hu_min) / self.hu_range * 2.0 - 1.0

    def unit_to_hu(self, unit):
        """[-1, 1] -> HU (works on numpy arrays and torch tensors)."""
        return (unit + 1.0) * 0.5 * self.hu_range + self.hu_min

    def unit_std_to_hu(self, std):
        """A standard deviation on the [-1, 1] scale -> HU."""
        return std * 0.5 * self.hu_range

    def normalize_mri(self, mri: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """MRI -> unit range: 0 maps to -1, the ``mri_percentile`` of the masked voxels to ``mri_reference_unit``;
        clipped at ``mri_max``."""
        inside = mri[mask] if mask.any() else mri.ravel()
        scale = float(np.percentile(inside, self.mri_percentile))
        if scale <= 0:
            scale = float(mri.max()) or 1.0
        return np.clip(mri / scale * (self.mri_reference_unit + 1.0) - 1.0, -1.0, self.mri_max).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        """In words, for model cards."""
        return (f"CT: HU clipped to [{self.hu_min:g}, {self.hu_max:g}] mapped linearly to [-1, 1]; MRI: 0 -> -1, "
                f"{self.mri_percentile:g}th percentile of the bright signal -> {self.mri_reference_unit:+g}, clipped "
                f"to [-1, {self.mri_max:g}] (version {self.version})")

    @classmethod
    def from_metadata(cls, metadata: dict[str, Any]) -> "IntensityMapping":
        """The mapping a model was trained with. Models saved before the mapping was versioned described version 1
        in words and stored only ``mri_percentile``; any other version is refused."""
        stored = metadata.get("intensity")
        if not isinstance(stored, dict) or "version" not in stored:
            return cls(mri_percentile=float(metadata.get("mri_percentile", cls.mri_percentile)))
        if stored["version"] != INTENSITY_VERSION or set(stored) - set(cls.__dataclass_fields__):
            raise UserInputError(f"model '{metadata.get('name')}' uses intensity mapping {stored}; this version reads "
                                 f"only version {INTENSITY_VERSION} ({', '.join(cls.__dataclass_fields__)})")
        return cls(**stored)


DEFAULT_INTENSITY = IntensityMapping()  # mritoct-ddpm's (and every model saved before versioning)
# The median of the bright signal moves little with one bright organ (a full bladder) or a coil's hot spot, where
# the 99.5th percentile follows them: the scale of the residual, CNN and GAN models and of new models.
MEDIAN_INTENSITY = IntensityMapping(mri_percentile=50.0, mri_max=4.0, mri_reference_unit=0.0)
MRI_SCALES = {"median": MEDIAN_INTENSITY, "p99.5": DEFAULT_INTENSITY}


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
