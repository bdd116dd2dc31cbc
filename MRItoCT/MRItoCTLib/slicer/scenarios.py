"""The MRItoCT self-test scenarios as plain functions over an MRML scene.

Slicer's ``MRItoCTTest`` and the pytest suite (under ``slicer-core``) run the same code.
``check`` is a ``unittest.TestCase`` used for its assertions.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from CTSynthesisCore.background import process_group_alive
from CTSynthesisCore.slicer.display import CT_LEVEL, CT_WINDOW, INFERNO_NAME, OWN_INFERNO_NAME, nodes_of_class
from CTSynthesisCore.slicer.mrml import image_from_volume_node, update_volume_node_from_image
from CTSynthesisCore.sample_data import sample_path

from ..catalog import DEFAULT_MODEL
from .nodes import SynthesisJob, output_names, synthesize_nodes
from ..settings import SynthesisSettings


def add_volume_node(scene, image: sitk.Image, name: str):
    """A new scalar volume node in ``scene`` holding ``image``."""
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
    update_volume_node_from_image(node, image)
    return node


def ensure_slice_view(scene):
    """The scene's first slice composite node (Slicer has three; a bare scene gets one)."""
    node = scene.GetFirstNodeByClass("vtkMRMLSliceCompositeNode")
    return node if node is not None else scene.AddNewNodeByClass("vtkMRMLSliceCompositeNode")


def run_synthesis_scenario(scene, check, model: str = DEFAULT_MODEL, image: sitk.Image | None = None,
                           settings: SynthesisSettings | None = None, background: bool = False) -> None:
    """Load the T2 sample (or ``image``), synthesize with a fast setting (in this process, or in a
    background worker process), and check geometry, value ranges, input and display."""
    image = image if image is not None else sitk.ReadImage(str(sample_path("t2_pelvis")))
    settings = settings or SynthesisSettings(sampler="ddim", steps=3, mc=2, seed=1, keep_samples=True)
    input_node = add_volume_node(scene, image, "T2")
    input_before = image_from_volume_node(input_node)
    slice_view = ensure_slice_view(scene)
    if background:
        job = SynthesisJob(input_node, None, None, settings, model=model, device="cpu").start()
        job.wait()
        outcome = job.finish()
        ct_node, std_node = outcome.ct_node, outcome.uncertainty_node
        check.assertIn("NFE", outcome.summary)
        check.assertNotIn("ctsynthesis-job", outcome.summary, "no temporary paths in the status line")
        check.assertFalse(job.folder.exists(), "the job's temporary folder must be removed")
        check.assertIn("median", outcome.facts["Uncertainty"], "the results box reports the uncertainty")
        check.assertIn(f"{settings.mc} Monte-Carlo samples", outcome.facts["Sampling"])
    else:
        ct_node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "sCT")
        std_node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "sCT uncertainty")
        synthesize_nodes(input_node, ct_node, std_node, settings, model=model, device="cpu")

    ct, std = image_from_volume_node(ct_node), image_from_volume_node(std_node)
    for output in (ct, std):
        check_same_grid(check, output, image)
    hu, spread = sitk.GetArrayViewFromImage(ct), sitk.GetArrayViewFromImage(std)
    check.assertGreaterEqual(float(hu.min()), -1024.0)
    check.assertLessEqual(float(hu.max()), 3000.0)
    check.assertGreaterEqual(float(spread.min()), 0.0)
    check.assertGreater(float(spread.max()), 0.0, "two Monte-Carlo samples must differ somewhere")
    check_synthesis_display(check, ct_node, std_node, slice_view)
    for node in (ct_node, std_node):
        check.assertIn("research use only", node.GetDescription() or "", "outputs are marked as research output")
    if settings.keep_samples:
        check_sample_sequence(check, scene, output_names("T2")[2], settings.mc, image)
    after = image_from_volume_node(input_node)
    check.assertTrue(np.array_equal(sitk.GetArrayViewFromImage(after), sitk.GetArrayViewFromImage(input_before)),
                     "the input volume must not change")


def check_same_grid(check, output: sitk.Image, reference: sitk.Image) -> None:
    check.assertEqual(output.GetSize(), reference.GetSize())
    np.testing.assert_allclose(output.GetSpacing(), reference.GetSpacing(), atol=1e-6)
    np.testing.assert_allclose(output.GetOrigin(), reference.GetOrigin(), atol=1e-5)
    np.testing.assert_allclose(output.GetDirection(), reference.GetDirection(), atol=1e-6)


def check_synthesis_display(check, ct_node, std_node, slice_view) -> None:
    """CT window/level, Inferno uncertainty overlay with a legend in HU, both layers in the slice view."""
    display = ct_node.GetDisplayNode()
    check.assertAlmostEqual(display.GetWindow(), CT_WINDOW)
    check.assertAlmostEqual(display.GetLevel(), CT_LEVEL)
    overlay = std_node.GetDisplayNode()
    check.assertIn(overlay.GetColorNode().GetName(), (INFERNO_NAME, OWN_INFERNO_NAME))
    check.assertTrue(overlay.GetApplyThreshold(), "near-zero uncertainty must be transparent")
    check.assertGreater(overlay.GetWindow(), 0.0)
    legend = std_node.GetScene().GetFirstNodeByClass("vtkMRMLColorLegendDisplayNode")
    if std_node.GetScene().IsNodeClassRegistered("vtkMRMLColorLegendDisplayNode"):
        check.assertIsNotNone(legend, "the uncertainty needs a colour legend")
        check.assertIn("HU", legend.GetTitleText())
    check.assertEqual(slice_view.GetBackgroundVolumeID(), ct_node.GetID())
    check.assertEqual(slice_view.GetForegroundVolumeID(), std_node.GetID())


def check_sample_sequence(check, scene, name: str, count: int, reference: sitk.Image) -> None:
    """Every Monte-Carlo sample kept in a sequence on the input grid, with a browser where possible."""
    sequences = nodes_of_class(scene, "vtkMRMLSequenceNode", name)
    check.assertEqual(len(sequences), 1, "one sequence of Monte-Carlo samples")
    sequence = sequences[0]
    check.assertEqual(sequence.GetNumberOfDataNodes(), count)
    check_same_grid(check, image_from_volume_node(sequence.GetNthDataNode(count - 1)), reference)
    if scene.IsNodeClassRegistered("vtkMRMLSequenceBrowserNode"):
        browser = scene.GetFirstNodeByClass("vtkMRMLSequenceBrowserNode")
        check.assertIsNotNone(browser)
        check.assertEqual(browser.GetMasterSequenceNode().GetID(), sequence.GetID())


def run_cancel_scenario(scene, check, model: str = DEFAULT_MODEL, timeout_s: float = 120.0) -> None:
    """Start a slow background synthesis, cancel it after its first progress report, and check that
    the worker process (and its process group) is gone and the scene is exactly as before."""
    image = sitk.ReadImage(str(sample_path("t2_pelvis")))
    input_node = add_volume_node(scene, image, "T2")
    nodes_before = scene.GetNumberOfNodes()
    settings = SynthesisSettings(sampler="ddpm", steps=1000, mc=4, seed=0)
    job = SynthesisJob(input_node, None, None, settings, model=model, device="cpu").start()
    job.process.wait_for_progress(timeout_s)  # raises if the worker ends or stays silent
    pid = job.process.pid
    job.cancel()
    check.assertFalse(job.running)
    check.assertFalse(job.folder.exists(), "cancel must remove the temporary files")
    check.assertFalse(process_group_alive(pid), "cancel must end the whole worker process group")
    with check.assertRaises(Exception) as raised:
        job.finish()
    check.assertEqual(type(raised.exception).__name__, "Cancelled")
    check.assertEqual(scene.GetNumberOfNodes(), nodes_before, "a cancelled run must not add nodes")
