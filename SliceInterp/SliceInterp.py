"""SliceInterp: raise the between-slice resolution of a CT (3D Slicer scripted module).

A thin Slicer layer over ``SliceInterpLib``.
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


class SliceInterp(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "Slice Interpolation"
        self.parent.categories = ["Filtering"]
        self.parent.dependencies = []
        self.parent.contributors = CONTRIBUTORS
        self.parent.helpText = (
            "Raises the between-slice resolution of a thick-slice CT. Classical interpolation (linear, cubic "
            "B-spline, windowed sinc) and the self-supervised cross-view mutual distillation of Fang et al. "
            "(CVPR 2022). Observed slices pass through unchanged. Research use only."
        )
        self.parent.acknowledgementText = ACKNOWLEDGEMENT


@parameterNodeWrapper
class SliceInterpParameterNode:
    inputVolume: vtkMRMLScalarVolumeNode
    outputVolume: vtkMRMLScalarVolumeNode
    uncertaintyVolume: vtkMRMLScalarVolumeNode
    factor: Annotated[int, WithinRange(2, 8)] = 2
    method: str = "crossview"
    adapt: bool = False


class SliceInterpWidget(ParameterNodeWidgetMixin, ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/SliceInterp.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = SliceInterpLogic()
        from SliceInterpLib.upsample import METHODS

        for method in METHODS:
            self.ui.methodComboBox.addItem(method)
        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.observeSceneAndParameters()

    def onApplyButton(self) -> None:
        with slicer.util.tryWithErrorDisplay("Failed to interpolate slices.", waitCursor=True):
            node = self._parameterNode
            if not node.outputVolume:
                node.outputVolume = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode",
                                                                       f"{node.inputVolume.GetName()} x{node.factor}")
            if node.method != "crossview":
                node.uncertaintyVolume = None
            result = self.logic.upsample(node.inputVolume, node.outputVolume, factor=node.factor, method=node.method,
                                         uncertaintyNode=node.uncertaintyVolume, adapt=node.adapt,
                                         progress=self._showProgress)
            slicer.util.setSliceViewerLayers(background=node.outputVolume, fit=True)
            self.ui.statusLabel.text = result.summary()

    def _showProgress(self, done: int, total: int, message: str = "") -> None:
        self.ui.progressBar.maximum = total
        self.ui.progressBar.value = done
        self.ui.statusLabel.text = message
        slicer.app.processEvents()


class SliceInterpLogic(ScriptedLoadableModuleLogic):
    """Usable from Slicer's Python console: ``SliceInterpLogic().upsample(ctNode, outNode, factor=2)``."""

    def getParameterNode(self):
        return SliceInterpParameterNode(super().getParameterNode())

    def upsample(self, inputNode, outputNode, factor=None, spacing=None, method: str = "crossview",
                 uncertaintyNode=None, adapt: bool = False, adaptMinutes: float = 2.0, device: str = "auto",
                 progress=None, cancel=None):
        from CTSynthesisCore.progress import no_progress
        from SliceInterpLib.nodes import upsample_nodes
        from SliceInterpLib.upsample import UpsampleSettings

        settings = UpsampleSettings(method=method, device=device, adapt_minutes=adaptMinutes if adapt else None)
        return upsample_nodes(inputNode, outputNode, factor=factor, spacing=spacing, uncertainty_node=uncertaintyNode,
                              settings=settings, progress=progress or no_progress, cancel=cancel)


class SliceInterpTest(ScriptedLoadableModuleTest):
    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_SliceInterp_scenario()

    def test_SliceInterp_scenario(self):
        from SliceInterpLib.scenarios import run_upsample_scenario

        run_upsample_scenario(slicer.mrmlScene, self)
