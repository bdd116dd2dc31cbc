"""Whether a synthetic CT shows the anatomy the models were trained for: hip bones on both sides of the body.

A NIfTI or NRRD file has no header to say which body part it shows, and the MRI's own statistics do not tell a
pelvis from an abdomen (docs/mritoct.md). The synthetic CT can: an axial slice through the hips shows large bone
(femoral heads and necks, acetabula, iliac wings) on both sides of the midline, while above the pelvis the bone is
the spine, in the midline, and thin ribs; a head shows one ring of skull. A synthetic CT with no such slice gets a
warning: either the image is not of the pelvis, or the model missed the bone, and either way the HU are not to be
trusted. Only thick bone counts (ribs and iliac wings are thin). The check cannot catch every other body part: a
chest's humeral heads, or thighs, can pass as hip bones.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from CTSynthesisCore.hounsfield import BODY_ABOVE_HU

HIP_BONE_HU = 120.0  # above soft tissue (at most about 60 HU) and below femoral-head marrow (150-400 HU)
HIP_BONE_CORE_MM = 8.0  # bone thicker than twice this: a femoral head (about 45 mm) or neck, not a rib or a wing
HIP_BONE_MIN_OFFSET = 0.12  # a bone's centre from the body's midline, as a share of the body's width
NO_HIP_BONES = "the synthetic CT shows no hip bones"  # how the warning starts


def thick_bone(ct_slice: np.ndarray, spacing_xy: tuple[float, float]) -> sitk.Image:
    """The bone of an axial slice that lies at least ``HIP_BONE_CORE_MM`` inside its own edge (a binary image)."""
    bone = sitk.GetImageFromArray((ct_slice > HIP_BONE_HU).astype(np.uint8))
    bone.SetSpacing(spacing_xy)
    radius = [max(1, round(HIP_BONE_CORE_MM / spacing)) for spacing in spacing_xy]
    return sitk.BinaryErode(bone, radius, sitk.sitkBall, 0, 1)


def lateral_bone_sides(ct_slice: np.ndarray, spacing_xy: tuple[float, float]) -> set[int]:
    """The sides of the body's midline (-1: low x, +1: high x) that hold thick bone (``thick_bone``) centred at
    least ``HIP_BONE_MIN_OFFSET`` of the body's width from the midline."""
    columns = np.flatnonzero((ct_slice > BODY_ABOVE_HU).any(axis=0))
    if columns.size < 2:
        return set()
    midline, width = (columns[0] + columns[-1]) / 2, float(columns[-1] - columns[0])
    statistics = sitk.LabelShapeStatisticsImageFilter()
    statistics.Execute(sitk.ConnectedComponent(thick_bone(ct_slice, spacing_xy)))
    offsets = [(statistics.GetCentroid(label)[0] / spacing_xy[0] - midline) / width for label in statistics.GetLabels()]
    return {int(np.sign(offset)) for offset in offsets if abs(offset) >= HIP_BONE_MIN_OFFSET}


def hip_bone_slices(ct_hu: np.ndarray, spacing_xy: tuple[float, float]) -> int:
    """How many axial slices of a (z, y, x) CT in LPS order show bone on both sides of the midline."""
    return sum(len(lateral_bone_sides(ct_slice, spacing_xy)) == 2 for ct_slice in ct_hu)


def anatomy_warnings(ct_hu: np.ndarray, spacing_xy: tuple[float, float]) -> list[str]:
    """A warning when no slice of the synthetic CT (z, y, x in LPS order, HU) shows hip bones on both sides."""
    if hip_bone_slices(ct_hu, spacing_xy):
        return []
    return [f"{NO_HIP_BONES} (no slice with thick bone on both sides of the midline): the image may not be of the "
            "pelvis, which the models were trained for, the hips may lie outside the field of view, or the model "
            "missed the bone; do not trust these HU without checking"]
