"""What the panels show and do for a user: quality presets, the time estimate and the confirmation before a long
run, controls greyed out where they do not apply, devices in words, the results box and warnings in a dialog.

The panels open through ``Testing/slicer_app_double.py`` over a real slicer-core scene (the ``panel`` fixture).
Dialogs follow Slicer's ``Base/Python/slicer/util.py`` (v5.10): ``warningDisplay`` and ``confirmOkCancelDisplay``
show a message box, and in testing mode ``confirmOkCancelDisplay`` answers OK without asking.
"""

from __future__ import annotations

import types
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest
import SimpleITK as sitk

REPO = Path(__file__).resolve().parent.parent


def add_volume(scene, image: sitk.Image, name: str):
    from CTSynthesisCore.slicer.mrml import update_volume_node_from_image

    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
    update_volume_node_from_image(node, image)
    return node


def collapsed_sections(module: str) -> dict[str, bool]:
    root = ElementTree.parse(REPO / module / "Resources" / "UI" / f"{module}.ui").getroot()
    return {w.get("name"): w.find("property[@name='collapsed']/bool").text == "true"
            for w in root.iter("widget") if w.get("class") == "ctkCollapsibleButton"}


def test_advanced_settings_are_collapsed_by_default_and_hold_the_sampling_controls():
    sections = collapsed_sections("MRItoCT")
    assert sections.pop("advancedCollapsibleButton") is True
    assert not any(sections.values()), "only Advanced starts collapsed"
    root = ElementTree.parse(REPO / "MRItoCT" / "Resources" / "UI" / "MRItoCT.ui").getroot()
    advanced = next(w for w in root.iter("widget") if w.get("name") == "advancedCollapsibleButton")
    inside = {w.get("name") for w in advanced.iter("widget")}
    assert {"samplerComboBox", "stepsSpinBox", "mcSpinBox", "seedSpinBox", "keepSamplesCheckBox"} <= inside
    assert not {"presetComboBox", "deviceComboBox", "modelComboBox", "inputSelector"} & inside


def test_presets_set_the_sampling_and_a_manual_change_shows_custom(panel):
    from MRItoCTLib.catalog import DEFAULT_MC_SAMPLES, DEFAULT_PRESET, DEFAULT_SAMPLER, PRESETS, SAMPLERS

    _, widget, _ = panel("MRItoCT")
    node, ui = widget._parameterNode, widget.ui
    standard = PRESETS[DEFAULT_PRESET]
    assert (standard.sampler, standard.steps, standard.mc) == (
        DEFAULT_SAMPLER, SAMPLERS[DEFAULT_SAMPLER].default_steps, DEFAULT_MC_SAMPLES), "Standard is the default"
    assert ui.presetComboBox.currentText == standard.title
    for preset in PRESETS.values():
        ui.presetComboBox.setCurrentIndex(ui.presetComboBox.findData(preset.name))
        assert (node.sampler, node.steps, node.mcSamples) == (preset.sampler, preset.steps, preset.mc)
        assert (ui.stepsSpinBox.value, ui.mcSpinBox.value) == (preset.steps, preset.mc), "Advanced shows it"
    ui.mcSpinBox.value = 3
    assert node.mcSamples == 3 and ui.presetComboBox.itemData(ui.presetComboBox.currentIndex) == "custom"


def test_a_new_sampler_resets_steps_visibly(panel):
    from MRItoCTLib.catalog import SAMPLERS

    _, widget, _ = panel("MRItoCT")
    ui = widget.ui
    ui.samplerComboBox.setCurrentIndex(ui.samplerComboBox.findData("dpmpp"))
    assert widget._parameterNode.steps == SAMPLERS["dpmpp"].default_steps == ui.stepsSpinBox.value
    assert f"Steps set to {SAMPLERS['dpmpp'].default_steps}" in ui.stepsNoteLabel.text
    ui.samplerComboBox.setCurrentIndex(ui.samplerComboBox.findData("ode"))
    assert ui.stepsSpinBox.enabled is False and "chooses its own steps" in ui.stepsNoteLabel.text


def test_the_estimate_follows_the_input_and_the_settings(panel, mrml_scene, t2_sample):
    from MRItoCTLib.estimate import estimate_run, volume_layout

    _, widget, _ = panel("MRItoCT")
    node, ui = widget._parameterNode, widget.ui
    assert "Choose an input volume" in ui.estimateLabel.text
    image = sitk.ReadImage(str(t2_sample))
    node.inputVolume = add_volume(mrml_scene, image, "T2")
    model = widget.models[node.model]
    expected = estimate_run(model, volume_layout(image.GetSize(), image.GetSpacing(), image.GetDirection()),
                            node.sampler, node.steps, node.mcSamples)
    assert expected.cpu_seconds and expected.slices == image.GetSize()[2]
    assert ui.estimateLabel.text == expected.text(gpu_expected=False)
    assert "Estimated time on a" in ui.estimateLabel.text
    before = expected.cpu_seconds
    ui.mcSpinBox.value = 2 * node.mcSamples
    assert widget.logic.estimate(node.inputVolume, model, node).cpu_seconds == pytest.approx(2 * before)


def test_a_long_cpu_run_asks_first_and_cancel_starts_nothing(panel, mrml_scene, t2_sample, monkeypatch):
    import CTSynthesisCore.slicer.dependencies as dependencies

    monkeypatch.setattr(dependencies, "ensure_requirements_in_slicer", lambda: True)
    _, widget, shown = panel("MRItoCT")
    node = widget._parameterNode
    node.inputVolume = add_volume(mrml_scene, sitk.ReadImage(str(t2_sample)), "T2")
    node.device = "cpu"
    widget.ui.presetComboBox.setCurrentIndex(widget.ui.presetComboBox.findData("paper"))
    started = []
    monkeypatch.setattr(widget, "startJob", started.append)
    widget.onApplyButton()
    assert len(shown["questions"]) == 1 and "estimated to take about" in shown["questions"][0]
    assert started == [], "the double answers Cancel: nothing starts"
    widget.ui.presetComboBox.setCurrentIndex(widget.ui.presetComboBox.findData("fast"))
    monkeypatch.setattr(widget, "createJob", lambda: "job")
    widget.onApplyButton()
    assert len(shown["questions"]) == 1 and started == ["job"], "a short run starts without a question"


def test_controls_a_deterministic_model_ignores_are_greyed_out(panel):
    _, widget, _ = panel("MRItoCT")
    ui = widget.ui
    deterministic = next(name for name, model in widget.models.items() if model.get("kind") == "regression")
    ui.modelComboBox.setCurrentIndex(ui.modelComboBox.findText(deterministic))
    for control in (ui.presetComboBox, ui.samplerComboBox, ui.stepsSpinBox, ui.mcSpinBox, ui.seedSpinBox,
                    ui.opacitySlider):
        assert control.enabled is False, control.name
    sampled = [name for name, model in widget.models.items() if model.get("kind") in ("diffusion", "residual")]
    assert {widget.models[name]["kind"] for name in sampled} == {"diffusion", "residual"}
    for name in sampled:  # a residual model is sampled too: CNN mean + diffusion residual, Monte-Carlo spread
        ui.modelComboBox.setCurrentIndex(ui.modelComboBox.findText(name))
        ui.mcSpinBox.value = 4
        assert ui.mcSpinBox.enabled is True and ui.opacitySlider.enabled is True and ui.samplerComboBox.enabled, name
        ui.mcSpinBox.value = 1
        assert ui.opacitySlider.enabled is False, "one sample has no spread to overlay"


@pytest.mark.parametrize("module", ["MRItoCT", "SliceInterp"])
def test_devices_are_named_in_words(panel, module):
    from CTSynthesisCore.device import DEVICE_CHOICES

    _, widget, _ = panel(module)
    combo = widget.ui.deviceComboBox
    assert [combo.itemData(i) for i in range(combo.count)] == list(DEVICE_CHOICES)
    assert combo.currentText == "Automatic (GPU if available)"
    combo.setCurrentIndex(combo.findData("cpu"))
    assert widget._parameterNode.device == "cpu" and widget.ui.deviceLabel.text == "CPU requested."


def test_results_box_and_warnings_dialog_after_a_run(panel, mrml_scene):
    _, widget, shown = panel("MRItoCT")
    ct = add_volume(mrml_scene, sitk.Image(8, 8, 2, sitk.sitkFloat32), "ct")
    spread = add_volume(mrml_scene, sitk.Image(8, 8, 2, sitk.sitkFloat32), "spread")
    spread.CreateDefaultDisplayNodes()
    spread.GetDisplayNode().SetAutoWindowLevel(0)
    spread.GetDisplayNode().SetWindowLevelMinMax(0.0, 80.0)
    facts = {"Model": "mritoct-ddpm", "Uncertainty": "median 12 HU, 95th percentile 40 HU inside the body"}
    outcome = types.SimpleNamespace(ct_node=ct, uncertainty_node=spread, summary="device cpu", facts=facts,
                                    warnings=["the input looks like a CT (values in HU), not a T2-weighted MRI"])
    widget.onJobSucceeded(outcome)
    assert "mritoct-ddpm" in widget.ui.resultsLabel.text and "95th percentile 40 HU" in widget.ui.resultsLabel.text
    assert widget.ui.resultsCollapsibleButton.collapsed is False
    assert len(shown["warnings"]) == 1 and "looks like a CT" in shown["warnings"][0]
    assert "looks like a CT" not in widget.ui.statusLabel.text, "warnings go to the dialog, not the status line"
    assert "80 HU" in widget.ui.legendLabel.text and "not an error bar" in widget.ui.legendLabel.text
    assert f"of the {widget._parameterNode.mcSamples} Monte-Carlo samples" in widget.ui.legendLabel.text


def test_sliceinterp_shows_the_spacing_before_and_after(panel, mrml_scene, ct_sample):
    _, widget, _ = panel("SliceInterp")
    node, ui = widget._parameterNode, widget.ui
    assert ui.applyButton.text == "Interpolate slices"
    image = sitk.ReadImage(str(ct_sample))
    old = image.GetSpacing()[2]
    node.inputVolume = add_volume(mrml_scene, image, "CT")
    node.factor = 2
    assert ui.spacingSummaryLabel.text == f"Slice spacing {old:.4g} mm → {old / 2:.4g} mm (factor 2)."
    ui.spacingCheckBox.checked = True
    ui.spacingSpinBox.value = old / 4
    assert node.useSpacing and f"→ {old / 4:.4g} mm (factor 4)" in ui.spacingSummaryLabel.text
    assert ui.factorSpinBox.enabled is False and ui.spacingSpinBox.enabled is True


def test_sliceinterp_greys_out_network_controls_for_classical_methods(panel):
    _, widget, _ = panel("SliceInterp")
    widget._parameterNode.method = "linear"
    for control in (widget.ui.adaptCheckBox, widget.ui.disagreementCheckBox, widget.ui.deviceComboBox,
                    widget.ui.opacitySlider):
        assert control.enabled is False, control.name
    widget._parameterNode.method = "crossview"
    assert widget.ui.opacitySlider.enabled is True


def test_facts_are_escaped_into_a_table():
    from CTSynthesisCore.slicer.panel import facts_html

    html = facts_html({"HU <range>": "-100 to 1200 HU"})
    assert html.startswith("<table>") and "HU &lt;range&gt;" in html and "-100 to 1200 HU" in html
    assert "No details" in facts_html({})
