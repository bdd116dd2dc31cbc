"""The SliceInterp self-test scenario as a plain function over an MRML scene (Slicer and pytest)."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from CTSynthesisCore.mrml import image_from_volume_node, update_volume_node_from_image
from CTSynthesisCore.sample_data import sample_path

from .nodes import upsample_nodes


def run_upsample_scenario(scene, check, image: sitk.Image | None = None, factor: int = 2,
                          method: str = "linear") -> None:
    """Upsample the CT sample (or ``image``) and check the finer grid and the untouched observed slices."""
    image = image if image is not None else sitk.ReadImage(str(sample_path("ct_abdomen_pelvis_3mm")))
    input_node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "CT")
    update_volume_node_from_image(input_node, image)
    output_node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "CT fine")
    upsample_nodes(input_node, output_node, factor=factor, method=method)
    result = image_from_volume_node(output_node)
    check.assertEqual(result.GetSize()[:2], image.GetSize()[:2])
    check.assertEqual(result.GetSize()[2], (image.GetSize()[2] - 1) * factor + 1)
    np.testing.assert_allclose(result.GetSpacing()[2], image.GetSpacing()[2] / factor, rtol=1e-6)
    np.testing.assert_allclose(result.GetSpacing()[:2], image.GetSpacing()[:2], rtol=1e-6)
    np.testing.assert_allclose(result.GetOrigin(), image.GetOrigin(), atol=1e-5)
    np.testing.assert_allclose(result.GetDirection(), image.GetDirection(), atol=1e-6)
    observed = sitk.GetArrayViewFromImage(result)[::factor]
    check.assertTrue(np.array_equal(observed, sitk.GetArrayViewFromImage(image)), "observed slices must pass unchanged")
