"""MRItoCT: synthetic CT and Monte-Carlo uncertainty from a T2-weighted MRI (3D Slicer scripted module).

A thin Slicer layer: the engine lives in ``MRItoCTLib`` and the node-level code in
``MRItoCTLib.slicer.nodes``, both usable without the GUI.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import slicer
from slicer import vtkMRMLScalarVolumeNode
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

_HERE = os.path.dirname(os.path.abspath(__file__))
if os.path.dirname(_HERE) not in sys.path:  # CTSynthesisCore sits beside the module folders
    sys.path.append(os.path.dirname(_HERE))

from CTSynthesisCore.device import DEFAULT_DEVICE, DEVICE_CHOICES  # noqa: E402
from CTSynthesisCore.slicer.panel import (  # noqa: E402
    ACKNOWLEDGEMENT,
    CONTRIBUTORS,
    BackgroundRunWidgetMixin,
    DeviceChoiceWidgetMixin,
    ParameterNodeWidgetMixin,
    self_test_can_run,
)
from MRItoCTLib.catalog import (  # noqa: E402 - torch-free: the panel opens before PyTorch is installed
    CUSTOM_PRESET,
    DEFAULT_MC_SAMPLES,
    DEFAULT_MODEL,
    DEFAULT_SAMPLER,
    DEFAULT_SEED,
    PRESETS,
    SAMPLED_KINDS,
    SAMPLERS,
    matching_preset,
)


class MRItoCT(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "MRI to CT"
        self.parent.categories = ["Radiotherapy", "Filtering"]
        self.parent.dependencies = []
        self.parent.contributors = CONTRIBUTORS
        self.parent.helpText = (
            "Synthesizes a CT (in HU) from a T2-weighted pelvis MRI with a conditional diffusion model and "
            "estimates a voxel-wise uncertainty from Monte-Carlo samples (their standard deviation). "
            f"Samplers: {', '.join(info.title for info in SAMPLERS.values())}. "
            "Research use only; not for clinical decisions."
        )
        self.parent.acknowledgementText = ACKNOWLEDGEMENT
        slicer.app.connect("startupCompleted()", registerSampleData)


def registerSampleData() -> None:
    """"T2 pelvis (ProstateX)" in the Sample Data module, from the file shipped with the extension."""
    from CTSynthesisCore.slicer.sample_data import register_sample_data

    register_sample_data(("t2_pelvis",))


@parameterNodeWrapper
class MRItoCTParameterNode:
    """Bound to the panel by ``SlicerParameterName`` in MRItoCT.ui, except ``model``, ``sampler`` and ``device``:
    their combo boxes show titles or a list found at run time, so the widget syncs them by hand. The Quality
    combo box is not a parameter: it shows which preset the sampler, steps and samples match."""

    inputVolume: vtkMRMLScalarVolumeNode
    outputVolume: vtkMRMLScalarVolumeNode
    uncertaintyVolume: vtkMRMLScalarVolumeNode
    model: str = DEFAULT_MODEL
    sampler: Annotated[str, Choice(list(SAMPLERS))] = DEFAULT_SAMPLER
    steps: Annotated[int, WithinRange(1, 20000)] = SAMPLERS[DEFAULT_SAMPLER].default_steps
    mcSamples: Annotated[int, WithinRange(1, 100)] = DEFAULT_MC_SAMPLES
    seed: Annotated[int, WithinRange(0, 2**31 - 1)] = DEFAULT_SEED
    device: Annotated[str, Choice(list(DEVICE_CHOICES))] = DEFAULT_DEVICE
    keepSamples: bool = False
    uncertaintyOpacity: Annotated[float, WithinRange(0.0, 1.0)] = 0.5


class MRItoCTWidget(BackgroundRunWidgetMixin, DeviceChoiceWidgetMixin, ParameterNodeWidgetMixin,
                    ScriptedLoadableModuleWidget, VTKObservationMixin):
    applyText = "Synthesize CT"
    startFailureText = "Cannot start the synthesis."
    failureText = "Synthesis failed:"

    def __init__(self, parent=None) -> None:
        # Set before the base __init__: without a parent it already runs setup() (ScriptedLoadableModule.py),
        # and it reaches VTKObservationMixin.__init__ through super().__init__().
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self.models = {}
        ScriptedLoadableModuleWidget.__init__(self, parent)

    def setup(self) -> None:
        """Build the panel. Imports nothing heavier than the standard library and the Slicer-side code, so it
        opens (and Apply can offer to install PyTorch) on a Slicer without PyTorch."""
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/MRItoCT.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = MRItoCTLogic()
        for info in SAMPLERS.values():
            self.ui.samplerComboBox.addItem(info.title, info.name)
        for preset in PRESETS.values():
            self.ui.presetComboBox.addItem(preset.title, preset.name)
        self.ui.presetComboBox.addItem("Custom (see Advanced)", CUSTOM_PRESET)
        self.setupDeviceChoice()
        self.models = {model["name"]: model for model in self.logic.availableModels()}
        for name in self.models:
            self.ui.modelComboBox.addItem(name)
        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.ui.samplerComboBox.connect("currentIndexChanged(int)", self.onSamplerChanged)
        self.ui.presetComboBox.connect("currentIndexChanged(int)", self.onPresetChanged)
        self.ui.modelComboBox.connect("currentTextChanged(QString)", self.onModelChanged)
        self.ui.opacitySlider.connect("valueChanged(double)", self.onOpacityChanged)
        self.observeSceneAndParameters()
        self.refuseUnsupportedSlicer()

    def onParameterNodeSet(self) -> None:
        self.syncUnboundWidgets()
        self.onModelChanged(self.ui.modelComboBox.currentText)

    def syncUnboundWidgets(self) -> None:
        """The hand-synced combo boxes (model, sampler, device, quality) follow the parameter node, the controls
        that do not apply are greyed out, and the time estimate is redone."""
        node = self._parameterNode
        self.ui.samplerComboBox.setCurrentIndex(max(self.ui.samplerComboBox.findData(node.sampler), 0))
        preset = matching_preset(node.sampler, node.steps, node.mcSamples)
        self.ui.presetComboBox.setCurrentIndex(self.ui.presetComboBox.findData(preset))
        modelIndex = self.ui.modelComboBox.findText(node.model)
        if modelIndex >= 0:
            self.ui.modelComboBox.setCurrentIndex(modelIndex)
        self.syncDeviceChoice()
        self.enableApplicableControls()
        self.ui.estimateLabel.text = self.logic.estimateText(node.inputVolume, self.models.get(node.model), node)

    def enableApplicableControls(self) -> None:
        """Grey out what the chosen model and settings ignore: sampling for a deterministic model, steps for an
        adaptive solver, the uncertainty overlay when there is no spread (one sample)."""
        node = self._parameterNode
        model = self.models.get(node.model, {})
        sampled = model.get("kind", "diffusion") in SAMPLED_KINDS
        for widget in (self.ui.presetComboBox, self.ui.samplerComboBox, self.ui.mcSpinBox, self.ui.seedSpinBox,
                       self.ui.keepSamplesCheckBox):
            widget.enabled = sampled
        self.ui.stepsSpinBox.enabled = sampled and SAMPLERS[node.sampler].uses_steps({})
        self.ui.opacitySlider.enabled = sampled and node.mcSamples > 1

    def onSamplerChanged(self, index: int) -> None:
        """A sampler chosen in the panel starts at its own default steps, and the panel says so."""
        name = self.ui.samplerComboBox.itemData(index)
        if name in SAMPLERS and self._parameterNode and self._parameterNode.sampler != name:
            info = SAMPLERS[name]
            self._parameterNode.sampler = name
            if info.uses_steps({}):
                self._parameterNode.steps = info.default_steps
                self.ui.stepsNoteLabel.text = f"Steps set to {info.default_steps}, the default of {info.title}."
            else:
                self.ui.stepsNoteLabel.text = f"{info.title} chooses its own steps."

    def onPresetChanged(self, index: int) -> None:
        """A quality preset sets the sampler, steps and Monte-Carlo samples; "Custom" changes nothing."""
        preset = PRESETS.get(self.ui.presetComboBox.itemData(index))
        node = self._parameterNode
        if preset is None or node is None or matching_preset(node.sampler, node.steps, node.mcSamples) == preset.name:
            return
        node.sampler, node.steps, node.mcSamples = preset.sampler, preset.steps, preset.mc
        self.ui.stepsNoteLabel.text = ""

    def onModelChanged(self, name: str) -> None:
        from CTSynthesisCore.slicer.panel import model_summary

        model = self.models.get(name)
        self.ui.modelSummaryLabel.text = model_summary(model) if model else ""
        if model and self._parameterNode and self._parameterNode.model != name:
            self._parameterNode.model = name

    def onOpacityChanged(self, value: float) -> None:
        from CTSynthesisCore.slicer.display import set_foreground_opacity

        set_foreground_opacity(slicer.mrmlScene, value)

    def confirmStart(self) -> bool:
        """Ask before converting a series whose DICOM header says it is not a pelvic T2, and before a CPU run
        estimated to take longer than the limit (Slicer's testing mode answers OK: Base/Python/slicer/util.py)."""
        from CTSynthesisCore.slicer.panel import bullets
        from MRItoCTLib.slicer.nodes import input_warnings

        node = self._parameterNode
        warnings = input_warnings(node.inputVolume)
        if warnings and not slicer.util.confirmOkCancelDisplay(
                f"This series is not what the models were trained for:\n{bullets(warnings)}\nConvert it anyway?",
                windowTitle="Check the input"):
            return False
        estimate = self.logic.estimate(node.inputVolume, self.models.get(node.model), node)
        if estimate is None or not estimate.needs_confirmation(self.logic.gpuExpected(node.device)):
            return True
        from MRItoCTLib.estimate import duration_text

        return slicer.util.confirmOkCancelDisplay(
            f"This synthesis is estimated to take about {duration_text(estimate.cpu_seconds)} on the CPU. "
            "Start it? (The Fast quality or fewer Monte-Carlo samples take less time; Cancel stops a run.)")

    def createJob(self):
        node = self._parameterNode
        steps = node.steps if SAMPLERS[node.sampler].uses_steps({}) else None
        return self.logic.synthesizeAsync(
            node.inputVolume, node.outputVolume, node.uncertaintyVolume, sampler=node.sampler, steps=steps,
            mc=node.mcSamples, seed=node.seed, model=node.model, device=node.device, keepSamples=node.keepSamples)

    def finishArguments(self) -> dict:
        return {"opacity": self.ui.opacitySlider.value}

    def onJobSucceeded(self, outcome) -> None:
        from CTSynthesisCore.slicer.panel import facts_html, show_warnings

        node = self._parameterNode
        node.outputVolume, node.uncertaintyVolume = outcome.ct_node, outcome.uncertainty_node
        if slicer.app.layoutManager():  # none when Slicer runs without its main window
            slicer.util.resetSliceViews()
        high = outcome.uncertainty_node.GetDisplayNode().GetWindowLevelMax()  # set by set_uncertainty_display
        self.ui.legendLabel.text = (
            f"Uncertainty (Inferno): 0 HU black → {high:.0f} HU pale yellow (this run's scale); near-zero voxels "
            f"transparent. It is the per-voxel standard deviation, in HU, of the {node.mcSamples} Monte-Carlo "
            "samples: it ranks where the model is less sure, it is not an error bar, and it is zero for one sample "
            "or a CNN/GAN model.")
        self.ui.statusLabel.text = f"Done: {outcome.summary}"
        self.ui.resultsLabel.text = facts_html(outcome.facts)
        self.ui.resultsCollapsibleButton.collapsed = False
        show_warnings(outcome.warnings)


class MRItoCTLogic(ScriptedLoadableModuleLogic):
    """Usable from Slicer's Python console: ``MRItoCTLogic().synthesize(inputNode, ctNode, stdNode)``."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)

    def getParameterNode(self):
        return MRItoCTParameterNode(super().getParameterNode())

    def availableModels(self) -> list:
        from CTSynthesisCore.weights import list_models

        return list_models("mritoct")

    def describeDevice(self, device: str) -> str:
        """Which device a run is expected to use, and why, told without importing PyTorch or creating a CUDA
        context in Slicer's process (the run itself happens in a child process, which reports the device used)."""
        from CTSynthesisCore.device import describe_device_request

        return describe_device_request(device)

    def gpuExpected(self, device: str) -> bool:
        from CTSynthesisCore.device import gpu_expected

        return gpu_expected(device)

    def estimate(self, inputNode, model: dict | None, parameters):
        """The expected cost of synthesizing ``inputNode`` with ``model`` (its metadata) and the parameter node's
        settings (``MRItoCTLib.estimate``); None without an input volume or a model."""
        from CTSynthesisCore.slicer.mrml import volume_node_geometry
        from MRItoCTLib.estimate import estimate_run, volume_layout

        if inputNode is None or inputNode.GetImageData() is None or model is None:
            return None
        layout = volume_layout(*volume_node_geometry(inputNode))
        return estimate_run(model, layout, parameters.sampler, parameters.steps, parameters.mcSamples)

    def estimateText(self, inputNode, model: dict | None, parameters) -> str:
        estimate = self.estimate(inputNode, model, parameters)
        if estimate is None:
            return "Choose an input volume to see the estimated time."
        return estimate.text(self.gpuExpected(parameters.device))

    def synthesize(self, inputNode, outputNode, uncertaintyNode=None, sampler: str = DEFAULT_SAMPLER, steps=None,
                   mc: int = DEFAULT_MC_SAMPLES, seed: int = DEFAULT_SEED, model: str = DEFAULT_MODEL, device: str = DEFAULT_DEVICE,
                   keepSamples: bool = False, progress=None, cancel=None):
        """Synchronous synthesis into the given nodes in this process; returns the engine's result."""
        from CTSynthesisCore.progress import no_progress
        from MRItoCTLib.slicer.nodes import synthesize_nodes
        from MRItoCTLib.settings import SynthesisSettings

        settings = SynthesisSettings(sampler=sampler, steps=steps, mc=mc, seed=seed, keep_samples=keepSamples)
        return synthesize_nodes(inputNode, outputNode, uncertaintyNode, settings.validated(), model=model,
                                device=device, progress=progress or no_progress, cancel=cancel)

    def synthesizeAsync(self, inputNode, outputNode=None, uncertaintyNode=None, sampler: str = DEFAULT_SAMPLER,
                        steps=None, mc: int = DEFAULT_MC_SAMPLES, seed: int = DEFAULT_SEED, model: str = DEFAULT_MODEL,
                        device: str = DEFAULT_DEVICE, keepSamples: bool = False):
        """The same in a background process: returns a not yet started ``SynthesisJob`` (``start()``, ``poll()``,
        ``cancel()``, ``finish()``); output nodes left as None are created on success."""
        from MRItoCTLib.slicer.nodes import SynthesisJob
        from MRItoCTLib.settings import SynthesisSettings

        settings = SynthesisSettings(sampler=sampler, steps=steps, mc=mc, seed=seed, keep_samples=keepSamples)
        return SynthesisJob(inputNode, outputNode, uncertaintyNode, settings, model=model, device=device)


class MRItoCTTest(ScriptedLoadableModuleTest):
    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        """Runs the scenarios where PyTorch and MONAI are installed (see ``self_test_can_run``)."""
        if not self_test_can_run(self):
            return
        for test in (self.test_MRItoCT_scenario, self.test_MRItoCT_background, self.test_MRItoCT_cancel):
            self.setUp()
            test()

    def test_MRItoCT_scenario(self):
        from MRItoCTLib.slicer.scenarios import run_synthesis_scenario

        run_synthesis_scenario(slicer.mrmlScene, self)

    def test_MRItoCT_background(self):
        from MRItoCTLib.slicer.scenarios import run_synthesis_scenario

        run_synthesis_scenario(slicer.mrmlScene, self, background=True)

    def test_MRItoCT_cancel(self):
        from MRItoCTLib.slicer.scenarios import run_cancel_scenario

        run_cancel_scenario(slicer.mrmlScene, self)
