"""The SliceInterp module's node level under slicer-core: background worker, cancel, errors, display."""

import unittest

import pytest
import SimpleITK as sitk


@pytest.fixture
def ct_block(ct_sample) -> sitk.Image:
    return sitk.ReadImage(str(ct_sample))[30:94, 20:84, 40:64]


def test_background_crossview_creates_output_and_disagreement_overlay(mrml_scene, ct_block, make_oblique,
                                                                        tiny_crossview_model):
    from SliceInterpLib.slicer.scenarios import run_upsample_scenario

    mrml_scene.AddNewNodeByClass("vtkMRMLSliceCompositeNode")
    run_upsample_scenario(mrml_scene, unittest.TestCase(), image=make_oblique(ct_block), factor=2,
                          model=tiny_crossview_model, background=True)


def test_background_classical_by_target_spacing(mrml_scene, ct_block):
    from CTSynthesisCore.slicer.mrml import image_from_volume_node, update_volume_node_from_image
    from SliceInterpLib.slicer.nodes import UpsampleJob
    from SliceInterpLib.settings import UpsampleSettings

    node = mrml_scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "CT")
    update_volume_node_from_image(node, ct_block)
    output = mrml_scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "fine")
    job = UpsampleJob(node, output, spacing=1.0, settings=UpsampleSettings(method="linear", device="cpu")).start()
    job.wait()
    outcome = job.finish()
    assert outcome.output_node is output and outcome.disagreement_node is None
    result = image_from_volume_node(output)
    assert abs(result.GetSpacing()[2] - 1.0) < 1e-6 and result.GetSize()[:2] == ct_block.GetSize()[:2]


def test_cancel_ends_the_worker_and_adds_no_node(mrml_scene, ct_sample):
    from CTSynthesisCore.slicer.mrml import update_volume_node_from_image
    from CTSynthesisCore.background import process_group_alive
    from SliceInterpLib.slicer.nodes import UpsampleJob
    from SliceInterpLib.settings import UpsampleSettings

    node = mrml_scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "CT")
    update_volume_node_from_image(node, sitk.ReadImage(str(ct_sample)))
    before = mrml_scene.GetNumberOfNodes()
    job = UpsampleJob(node, None, factor=8, settings=UpsampleSettings(method="crossview", device="cpu"),
                      disagreement=True).start()
    job.process.wait_for_progress(timeout_s=120)
    pid = job.process.pid
    job.cancel()
    assert not job.running and not process_group_alive(pid) and not job.folder.exists()
    assert mrml_scene.GetNumberOfNodes() == before


def test_job_errors_are_one_line_before_and_after_starting(mrml_scene, ct_block):
    from CTSynthesisCore.errors import UserInputError
    from CTSynthesisCore.slicer.mrml import update_volume_node_from_image
    from SliceInterpLib.slicer.nodes import UpsampleJob
    from SliceInterpLib.settings import UpsampleSettings

    node = mrml_scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "CT")
    update_volume_node_from_image(node, ct_block[:, :, :2])  # two slices: too few neighbours
    with pytest.raises(UserInputError, match="needs the crossview"):
        UpsampleJob(node, None, factor=2, settings=UpsampleSettings(method="cubic"), disagreement=True)
    with pytest.raises(UserInputError, match="cannot be the input"):
        UpsampleJob(node, node, factor=2)
    job = UpsampleJob(node, None, factor=2, settings=UpsampleSettings(method="linear", device="cpu")).start()
    with pytest.raises(UserInputError) as raised:
        job.wait()
    assert "slice" in str(raised.value) and "\n" not in str(raised.value)
    assert mrml_scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode") == 1
