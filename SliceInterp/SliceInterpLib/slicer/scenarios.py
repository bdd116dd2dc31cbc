"""The SliceInterp self-test scenarios as plain functions over an MRML scene (Slicer and pytest)."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from CTSynthesisCore.slicer.display import INFERNO_NAME, OWN_INFERNO_NAME
from CTSynthesisCore.slicer.mrml import image_from_volume_node, update_volume_node_from_image
from CTSynthesisCore.sample_data import sample_path

from .nodes import UpsampleJob, upsample_nodes
from ..catalog import SAMPLE
from ..settings import UpsampleSettings


def run_upsample_scenario(scene, check, image: sitk.Image | None = None, factor: int = 2,
                          method: str = "crossview", model: str | None = None, background: bool = False) -> None:
    """Upsample the CT sample (or ``image``) in this process or in a background worker; check the finer
    grid, the untouched observed slices and input, and for the network the disagreement overlay."""
    image = image if image is not None else sitk.ReadImage(str(sample_path(SAMPLE)))
    input_node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "CT")
    update_volume_node_from_image(input_node, image)
    settings = UpsampleSettings(method=method, model=model, device="cpu")
    if background:
        job = UpsampleJob(input_node, None, factor=factor, settings=settings, disagreement=method == "crossview")
        job.start().wait()
        outcome = job.finish()
        output_node, spread_node = outcome.output_node, outcome.disagreement_node
        check.assertIn("slices", outcome.summary)
        check.assertIn("→", outcome.facts["Slices"], "the results box reports the slices before and after")
    else:
        output_node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "CT fine")
        spread_node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "CT disagreement") if method == "crossview" else None
        upsample_nodes(input_node, output_node, factor=factor, disagreement_node=spread_node, settings=settings)
    result = image_from_volume_node(output_node)
    check.assertEqual(result.GetSize()[:2], image.GetSize()[:2])
    check.assertEqual(result.GetSize()[2], (image.GetSize()[2] - 1) * factor + 1)
    np.testing.assert_allclose(result.GetSpacing()[2], image.GetSpacing()[2] / factor, rtol=1e-6)
    np.testing.assert_allclose(result.GetSpacing()[:2], image.GetSpacing()[:2], rtol=1e-6)
    np.testing.assert_allclose(result.GetOrigin(), image.GetOrigin(), atol=1e-5)
    np.testing.assert_allclose(result.GetDirection(), image.GetDirection(), atol=1e-6)
    observed = sitk.GetArrayViewFromImage(result)[::factor]
    check.assertTrue(np.array_equal(observed, sitk.GetArrayViewFromImage(image)), "observed slices must pass unchanged")
    check.assertTrue(np.array_equal(sitk.GetArrayFromImage(image_from_volume_node(input_node)),
                                    sitk.GetArrayViewFromImage(image)), "the input volume must not change")
    composite = scene.GetFirstNodeByClass("vtkMRMLSliceCompositeNode")
    if composite is not None:
        check.assertEqual(composite.GetBackgroundVolumeID(), output_node.GetID())
    if spread_node is not None:
        spread = image_from_volume_node(spread_node)
        check.assertEqual(spread.GetSize(), result.GetSize())
        np.testing.assert_allclose(spread.GetOrigin(), result.GetOrigin(), atol=1e-5)
        values = sitk.GetArrayViewFromImage(spread)
        check.assertTrue(values.min() >= 0 and np.all(values[::factor] == 0), "disagreement >= 0, zero on observed slices")
        check.assertIn(spread_node.GetDisplayNode().GetColorNode().GetName(), (INFERNO_NAME, OWN_INFERNO_NAME))
