"""The MRItoCT module's node level under slicer-core: background worker, cancel, errors, display, sequence."""

import unittest

import numpy as np
import pytest
import SimpleITK as sitk


def test_background_synthesis_fills_new_nodes_with_display_and_sequence(mrml_scene, tiny_model):
    from MRItoCTLib.slicer.scenarios import run_synthesis_scenario

    run_synthesis_scenario(mrml_scene, unittest.TestCase(), model=str(tiny_model), background=True)


def test_in_process_synthesis_on_oblique_input_keeps_samples(mrml_scene, tiny_model, t2_sample, make_oblique):
    from MRItoCTLib.settings import SynthesisSettings
    from MRItoCTLib.slicer.scenarios import run_synthesis_scenario

    image = make_oblique(sitk.ReadImage(str(t2_sample)))
    settings = SynthesisSettings(sampler="ddim", steps=2, mc=3, seed=2, keep_samples=True)
    run_synthesis_scenario(mrml_scene, unittest.TestCase(), model=str(tiny_model), image=image, settings=settings)


def test_cancel_ends_the_worker_and_leaves_the_scene_unchanged(mrml_scene, tiny_model):
    from MRItoCTLib.slicer.scenarios import run_cancel_scenario

    run_cancel_scenario(mrml_scene, unittest.TestCase(), model=str(tiny_model))


def test_worker_error_is_one_line_and_nodes_stay_untouched(mrml_scene, tiny_model):
    from CTSynthesisCore.errors import UserInputError
    from MRItoCTLib.slicer.nodes import SynthesisJob
    from MRItoCTLib.settings import SynthesisSettings
    from MRItoCTLib.slicer.scenarios import add_volume_node

    constant = sitk.Image(32, 32, 4, sitk.sitkFloat32)  # a constant MRI: the engine refuses it
    input_node = add_volume_node(mrml_scene, constant, "flat")
    ct_node = mrml_scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "ct")
    job = SynthesisJob(input_node, ct_node, None, SynthesisSettings(sampler="ddim", steps=2, mc=1),
                       model=str(tiny_model), device="cpu").start()
    with pytest.raises(UserInputError) as raised:
        job.wait()
    message = str(raised.value)
    assert "constant" in message and "\n" not in message and "Traceback" not in message
    assert ct_node.GetImageData() is None, "a failed run must not fill the output node"
    assert not job.folder.exists()


def test_job_refuses_output_equal_to_input_before_starting(mrml_scene, tiny_model, t2_sample):
    from CTSynthesisCore.errors import UserInputError
    from MRItoCTLib.slicer.nodes import SynthesisJob
    from MRItoCTLib.settings import SynthesisSettings
    from MRItoCTLib.slicer.scenarios import add_volume_node

    node = add_volume_node(mrml_scene, sitk.ReadImage(str(t2_sample)), "T2")
    with pytest.raises(UserInputError, match="cannot be the input"):
        SynthesisJob(node, node, None, SynthesisSettings(), model=str(tiny_model))
    with pytest.raises(UserInputError, match="select an input"):
        SynthesisJob(None, None, None, SynthesisSettings(), model=str(tiny_model))


def test_inferno_table_runs_dark_to_bright():
    from CTSynthesisCore.slicer.display import inferno_table

    table = inferno_table()
    luminance = table @ np.array([0.2126, 0.7152, 0.0722])
    assert table.shape == (256, 3) and np.all(np.diff(luminance) > 0), "a perceptual map brightens monotonically"


def test_model_summary_names_its_figure_for_what_it_is():
    """The panel's model line must not read like a clinical accuracy: the MAE is on simulated validation slices."""
    from CTSynthesisCore.slicer.panel import model_summary
    from CTSynthesisCore.weights import list_models

    for metadata in list_models("mritoct"):
        summary = model_summary(metadata)
        assert "simulated validation slices (not a clinical figure)" in summary and "mae_hu" not in summary


def test_new_output_nodes_are_named_as_research_output():
    from MRItoCTLib.slicer.nodes import output_names

    assert all(name.endswith("(research)") for name in output_names("T2"))
