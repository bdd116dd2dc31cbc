"""Volume node <-> SimpleITK round trips keep voxels and IJKToRAS exactly (real vtkMRMLScene)."""

import numpy as np
import pytest
import SimpleITK as sitk

from CTSynthesisCore.slicer.mrml import ijk_to_ras_from_image, image_from_volume_node, update_volume_node_from_image


def _ijk_to_ras(node) -> np.ndarray:
    import vtk

    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


def _test_image(oblique: bool, make_oblique) -> sitk.Image:
    rng = np.random.default_rng(3)
    image = sitk.GetImageFromArray(rng.normal(size=(5, 7, 9)).astype(np.float32))
    image.SetSpacing((0.5, 0.8, 3.0))
    image.SetOrigin((-10.0, 20.0, 5.5))
    return make_oblique(image) if oblique else image


@pytest.mark.parametrize("oblique", [False, True])
def test_node_image_node_round_trip(mrml_scene, make_oblique, oblique):
    image = _test_image(oblique, make_oblique)
    node = mrml_scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "v")
    update_volume_node_from_image(node, image)
    matrix = _ijk_to_ras(node)
    np.testing.assert_allclose(matrix, ijk_to_ras_from_image(image), atol=1e-12)
    # LPS (SimpleITK) -> RAS (Slicer): x and y flip sign
    np.testing.assert_allclose(matrix[:3, 3], [-image.GetOrigin()[0], -image.GetOrigin()[1], image.GetOrigin()[2]])

    back = image_from_volume_node(node)
    assert np.array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(image))
    np.testing.assert_allclose(back.GetSpacing(), image.GetSpacing(), atol=1e-12)
    np.testing.assert_allclose(back.GetOrigin(), image.GetOrigin(), atol=1e-12)
    np.testing.assert_allclose(back.GetDirection(), image.GetDirection(), atol=1e-12)

    second = mrml_scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "v2")
    update_volume_node_from_image(second, back)
    np.testing.assert_allclose(_ijk_to_ras(second), matrix, atol=1e-12)
    assert np.array_equal(sitk.GetArrayFromImage(image_from_volume_node(second)), sitk.GetArrayFromImage(image))


def test_physical_point_agrees_between_slicer_and_simpleitk(mrml_scene, make_oblique):
    image = _test_image(True, make_oblique)
    node = mrml_scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "v")
    update_volume_node_from_image(node, image)
    index = (3, 2, 4)
    lps = np.array(image.TransformIndexToPhysicalPoint(index))
    ras = _ijk_to_ras(node) @ np.array([*index, 1.0])
    np.testing.assert_allclose(ras[:3], lps * [-1, -1, 1], atol=1e-9)
