"""Paired T2 MRI / CT made from a real CT: HU-derived tissue fractions rendered with the spin-echo model."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from ..intensity import fill_holes_per_slice
from .tissue import TISSUE_INDEX, TISSUES, add_mri_acquisition, signal_table

# (tissue, HU) anchors: between two anchors a voxel is a linear mixture of the two tissues
HU_ANCHORS = (("gas", -950.0), ("fat", -100.0), ("muscle", 50.0), ("marrow", 230.0), ("cortical_bone", 1400.0))


def tissue_fractions(hu: np.ndarray) -> np.ndarray:
    """(tissues, ...) fractions from HU by piecewise-linear mixing of neighbouring anchors."""
    fractions = np.zeros((len(TISSUES), *hu.shape), np.float32)
    values = np.array([v for _, v in HU_ANCHORS], np.float32)
    clipped = np.clip(hu, values[0], values[-1])
    position = np.interp(clipped, values, np.arange(len(values)))
    lower = np.floor(position).astype(int).clip(0, len(values) - 2)
    weight = (position - lower).astype(np.float32)
    for index, (name, _) in enumerate(HU_ANCHORS):
        fractions[TISSUE_INDEX[name]] += np.where(lower == index, 1.0 - weight, 0.0)
        if index > 0:
            fractions[TISSUE_INDEX[name]] += np.where(lower == index - 1, weight, 0.0)
    return fractions


def ct_body_mask(ct: sitk.Image) -> sitk.Image:
    """Patient body in a CT: above -500 HU, largest component, holes filled per slice."""
    foreground = sitk.Cast(ct > -500, sitk.sitkUInt8)
    largest = sitk.Cast(sitk.RelabelComponent(sitk.ConnectedComponent(foreground), sortByObjectSize=True) == 1,
                        sitk.sitkUInt8)
    return fill_holes_per_slice(largest)


def pair_from_ct(ct: sitk.Image, rng: np.random.Generator, slice_mm: float = 3.0) -> tuple[sitk.Image, sitk.Image, sitk.Image]:
    """(T2 MRI, CT, body mask) on the CT's in-plane grid with ``slice_mm`` slices."""
    spacing = (ct.GetSpacing()[0], ct.GetSpacing()[1], slice_mm)
    size = (ct.GetSize()[0], ct.GetSize()[1], max(1, int(ct.GetSize()[2] * ct.GetSpacing()[2] / slice_mm)))
    ct = sitk.Resample(ct, size, sitk.Transform(), sitk.sitkLinear, ct.GetOrigin(), spacing, ct.GetDirection(),
                       -1024.0, sitk.sitkFloat32)
    mask = ct_body_mask(ct)
    hu = sitk.GetArrayFromImage(ct)
    inside = sitk.GetArrayFromImage(mask).astype(bool)
    fractions = tissue_fractions(hu)
    clean = np.tensordot(signal_table(rng.uniform(3500, 6000), rng.uniform(85, 120)), fractions, axes=1)
    clean[~inside] = 0.0
    mri = add_mri_acquisition(clean.astype(np.float32), spacing, rng)
    hu_out = np.where(inside, np.clip(hu, -1024, 3071), -1024.0)
    images = []
    for array in (mri, hu_out, inside.astype(np.uint8)):
        image = sitk.GetImageFromArray(array)
        image.CopyInformation(ct)
        images.append(image)
    images[1] = sitk.Cast(sitk.Round(images[1]), sitk.sitkInt16)
    return images[0], images[1], images[2]
