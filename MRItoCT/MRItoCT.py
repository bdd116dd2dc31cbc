"""MRItoCT: synthetic CT and Monte-Carlo uncertainty from a T2-weighted MRI (3D Slicer scripted module).

A thin Slicer layer: the engine lives in ``MRItoCTLib`` and the node-level code in
``MRItoCTLib.nodes``, both usable without the GUI.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import slicer
from slicer import vtkMRMLScalarVolumeNode
from slicer.parameterNodeWrapper import WithinRange, parameterNodeWrapper
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

from CTSynthesisCore.slicer_module import ACKNOWLEDGEMENT, CONTRIBUTORS, ParameterNodeWidgetMixin  # noqa: E402


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
            "Samplers: DDPM, Euler–Maruyama, Predictor–Corrector, probability-flow ODE, DDIM, DPM-Solver++. "
            "Research use only; not for clinical decisions."
        )
        self.parent.acknowledgementText = ACKNOWLEDGEMENT


@parameterNodeWrapper
class MRItoCTParameterNode:
    inputVolume: vtkMRMLScalarVolumeNode
    outputVolume: vtkMRMLScalarVolumeNode
    uncertaintyVolume: vtkMRMLScalarVolumeNode
    model: str = "mritoct-ddpm"
    sampler: str = "dpmpp"
    steps: Annotated[int, WithinRange(1, 20000)] = 20
    mcSamples: Annotated[int, WithinRange(1, 100)] = 4
    seed: int = 0
    device: str = "auto"
    keepSamples: bool = False


class MRItoCTWidget(ParameterNodeWidgetMixin, ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/MRItoCT.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = MRItoCTLogic()
        from MRItoCTLib.samplers import SAMPLER_INFO

        for info in SAMPLER_INFO.values():
            self.ui.samplerComboBox.addItem(info.title, info.name)
        for device in ("auto", "cuda", "cpu"):
            self.ui.deviceComboBox.addItem(device)
        for model in self.logic.availableModels():
            self.ui.modelComboBox.addItem(model["name"])
        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.ui.samplerComboBox.connect("currentIndexChanged(int)", self.onSamplerChanged)
        self.ui.opacitySlider.connect("valueChanged(double)", self.onOpacityChanged)
        self.observeSceneAndParameters()

    def onSamplerChanged(self, index: int) -> None:
        from MRItoCTLib.samplers import SAMPLER_INFO

        name = self.ui.samplerComboBox.itemData(index)
        if name in SAMPLER_INFO:
            self.ui.stepsSpinBox.value = SAMPLER_INFO[name].default_steps

    def onOpacityChanged(self, value: float) -> None:
        slicer.util.setSliceViewerLayers(foregroundOpacity=value)

    def onApplyButton(self) -> None:
        with slicer.util.tryWithErrorDisplay("Failed to synthesize CT.", waitCursor=True):
            node = self._parameterNode
            if not node.outputVolume:
                node.outputVolume = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "synthetic CT")
            if not node.uncertaintyVolume:
                node.uncertaintyVolume = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "sCT uncertainty")

            def progress(done, total, message=""):
                self.ui.progressBar.maximum = total
                self.ui.progressBar.value = done
                self.ui.statusLabel.text = message
                slicer.app.processEvents()

            result = self.logic.synthesize(node.inputVolume, node.outputVolume, node.uncertaintyVolume,
                                           sampler=self.ui.samplerComboBox.currentData, steps=node.steps,
                                           mc=node.mcSamples, seed=node.seed, model=node.model,
                                           device=node.device, progress=progress)
            slicer.util.setSliceViewerLayers(background=node.outputVolume, foreground=node.uncertaintyVolume,
                                             foregroundOpacity=self.ui.opacitySlider.value, fit=True)
            self.ui.statusLabel.text = result.summary()


class MRItoCTLogic(ScriptedLoadableModuleLogic):
    """Usable from Slicer's Python console: ``MRItoCTLogic().synthesize(inputNode, ctNode, stdNode)``."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)

    def getParameterNode(self):
        return MRItoCTParameterNode(super().getParameterNode())

    def availableModels(self) -> list:
        from CTSynthesisCore.weights import list_models

        return list_models("mritoct")

    def synthesize(self, inputNode, outputNode, uncertaintyNode=None, sampler: str = "dpmpp", steps=None,
                   mc: int = 4, seed: int = 0, model: str = "mritoct-ddpm", device: str = "auto",
                   progress=None, cancel=None):
        """Synchronous synthesis into the given nodes; returns the engine's result (summary, NFE, seconds)."""
        from MRItoCTLib.nodes import synthesize_nodes
        from MRItoCTLib.pipeline import SynthesisSettings

        settings = SynthesisSettings(sampler=sampler, steps=steps, mc=mc, seed=seed)
        kwargs = {"progress": progress} if progress else {}
        return synthesize_nodes(inputNode, outputNode, uncertaintyNode, settings, model=model, device=device,
                                cancel=cancel, **kwargs)


class MRItoCTTest(ScriptedLoadableModuleTest):
    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_MRItoCT_scenario()

    def test_MRItoCT_scenario(self):
        from MRItoCTLib.scenarios import run_synthesis_scenario

        run_synthesis_scenario(slicer.mrmlScene, self)
