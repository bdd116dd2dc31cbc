"""The MRItoCT self-test scenario as a plain function over an MRML scene.

Slicer's ``MRItoCTTest`` and the pytest suite (under ``slicer-core``) run the same code.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from CTSynthesisCore.mrml import image_from_volume_node, update_volume_node_from_image
from CTSynthesisCore.sample_data import sample_path

from .model import DEFAULT_MODEL
from .nodes import CT_LEVEL, CT_WINDOW, synthesize_nodes
from .pipeline import SynthesisSettings


def add_volume_node(scene, image: sitk.Image, name: str):
    """A new scalar volume node in ``scene`` holding ``image``."""
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
    update_volume_node_from_image(node, image)
    return node


def run_synthesis_scenario(scene, check, model: str = DEFAULT_MODEL, image: sitk.Image | None = None,
                           settings: SynthesisSettings | None = None) -> None:
    """Load the T2 sample (or ``image``), synthesize with a fast setting, check the outputs.

    ``check`` is a ``unittest.TestCase`` used for its assertions.
    """
    image = image if image is not None else sitk.ReadImage(str(sample_path("t2_pelvis")))
    settings = settings or SynthesisSettings(sampler="ddim", steps=3, mc=2, seed=1)
    input_node = add_volume_node(scene, image, "T2")
    input_before = image_from_volume_node(input_node)
    ct_node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "sCT")
    std_node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "sCT uncertainty")
    synthesize_nodes(input_node, ct_node, std_node, settings, model=model, device="cpu")

    ct, std = image_from_volume_node(ct_node), image_from_volume_node(std_node)
    for output in (ct, std):
        check.assertEqual(output.GetSize(), image.GetSize())
        np.testing.assert_allclose(output.GetSpacing(), image.GetSpacing(), atol=1e-6)
        np.testing.assert_allclose(output.GetOrigin(), image.GetOrigin(), atol=1e-5)
        np.testing.assert_allclose(output.GetDirection(), image.GetDirection(), atol=1e-6)
    hu, spread = sitk.GetArrayViewFromImage(ct), sitk.GetArrayViewFromImage(std)
    check.assertGreaterEqual(float(hu.min()), -1024.0)
    check.assertLessEqual(float(hu.max()), 3000.0)
    check.assertGreaterEqual(float(spread.min()), 0.0)
    check.assertGreater(float(spread.max()), 0.0, "two Monte-Carlo samples must differ somewhere")
    display = ct_node.GetDisplayNode()
    check.assertAlmostEqual(display.GetWindow(), CT_WINDOW)
    check.assertAlmostEqual(display.GetLevel(), CT_LEVEL)
    after = image_from_volume_node(input_node)
    check.assertTrue(np.array_equal(sitk.GetArrayViewFromImage(after), sitk.GetArrayViewFromImage(input_before)),
                     "the input volume must not change")
