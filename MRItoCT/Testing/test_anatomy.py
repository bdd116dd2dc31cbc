"""The hip-bone check of a synthetic CT (MRItoCTLib.anatomy): thick bone on both sides of the midline means hips;
a spine, ribs or nothing do not."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from MRItoCTLib.anatomy import NO_HIP_BONES, anatomy_warnings, hip_bone_slices, lateral_bone_sides

SPACING = (2.0, 2.0)


def body_slice(size: int = 200) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A 400 x 400 mm axial slice: an elliptical body of soft tissue (40 HU) in air, and its pixel coordinates (mm)."""
    y, x = (np.mgrid[:size, :size] - size / 2) * SPACING[0]
    ct = np.where((x / 170) ** 2 + (y / 120) ** 2 < 1, 40.0, -1024.0)
    return ct, x, y


def with_disc(ct: np.ndarray, x: np.ndarray, y: np.ndarray, centre_x: float, radius: float, hu: float = 250.0):
    return np.where((x - centre_x) ** 2 + y ** 2 < radius ** 2, hu, ct)


def test_femoral_heads_on_both_sides_are_hips_and_a_spine_or_ribs_are_not():
    ct, x, y = body_slice()
    hips = with_disc(with_disc(ct, x, y, -90, 22), x, y, 90, 22)  # two femoral heads of 44 mm
    assert lateral_bone_sides(hips, SPACING) == {-1, 1}
    assert lateral_bone_sides(with_disc(ct, x, y, -90, 22), SPACING) == {-1}
    spine = with_disc(ct, x, y, 0, 20)  # a vertebral body in the midline
    assert lateral_bone_sides(spine, SPACING) == set()
    ribs = np.where((np.abs(np.hypot(x / 160, y / 110) - 1) < 0.03) & (np.abs(x) > 60), 400.0, ct)  # 6-10 mm thick
    assert lateral_bone_sides(ribs, SPACING) == set()
    assert lateral_bone_sides(np.where(hips > 100, 90.0, hips), SPACING) == set(), "soft tissue is not bone"
    volume = np.stack([ct, spine, hips, ribs])
    assert hip_bone_slices(volume, SPACING) == 1 and anatomy_warnings(volume, SPACING) == []
    assert anatomy_warnings(np.stack([ct, spine, ribs]), SPACING)[0].startswith(NO_HIP_BONES)
    assert anatomy_warnings(np.full((2, 50, 50), -1024.0), SPACING)[0].startswith(NO_HIP_BONES), "no body at all"


@pytest.fixture(scope="module")
def real_ct(ct_sample) -> sitk.Image:
    return sitk.DICOMOrient(sitk.ReadImage(str(ct_sample)), "LPS")


def test_a_real_ct_shows_hips_in_its_pelvis_and_none_above_it(real_ct):
    """The bundled abdomen-pelvis CT (3 mm, slices from the feet up in LPS order): its lower third shows the femoral
    heads and acetabula, its upper half (lumbar spine, kidneys, liver, ribs) does not."""
    hu = sitk.GetArrayFromImage(real_ct).astype(np.float32)
    spacing = real_ct.GetSpacing()[:2]
    count = len(hu)
    assert hip_bone_slices(hu[: count // 3], spacing) >= 5
    assert anatomy_warnings(hu[: count // 3], spacing) == []
    assert hip_bone_slices(hu[count // 2:], spacing) == 0
    assert anatomy_warnings(hu[count // 2:], spacing)[0].startswith(NO_HIP_BONES)
