"""SliceInterp: raise the between-slice resolution of a CT (3D Slicer scripted module).

A thin Slicer layer over ``SliceInterpLib``.
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

from CTSynthesisCore.slicer.panel import (  # noqa: E402
    ACKNOWLEDGEMENT,
    CONTRIBUTORS,
    BackgroundRunWidgetMixin,
    ParameterNodeWidgetMixin,
    self_test_can_run,
)
from CTSynthesisCore.device import DEFAULT_DEVICE  # noqa: E402
from SliceInterpLib.catalog import (  # noqa: E402 - torch-free
    DEFAULT_ADAPT_MINUTES,
    DEFAULT_FACTOR,
    DEFAULT_METHOD,
    METHODS,
    NETWORK_METHOD,
)


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
        slicer.app.connect("startupCompleted()", registerSampleData)


def registerSampleData() -> None:
    """A thick-slice CT in the Sample Data module, from the file shipped with the extension."""
    from CTSynthesisCore.slicer.sample_data import register_sample_data

    register_sample_data(("ct_abdomen_pelvis_3mm",))


@parameterNodeWrapper
class SliceInterpParameterNode:
    inputVolume: vtkMRMLScalarVolumeNode
    outputVolume: vtkMRMLScalarVolumeNode
    disagreementVolume: vtkMRMLScalarVolumeNode
    factor: Annotated[int, WithinRange(2, 8)] = DEFAULT_FACTOR
    useSpacing: bool = False
    spacing: Annotated[float, WithinRange(0.05, 50.0)] = 1.0
    method: Annotated[str, Choice(list(METHODS))] = DEFAULT_METHOD
    adapt: bool = False
    disagreement: bool = True


class SliceInterpWidget(BackgroundRunWidgetMixin, ParameterNodeWidgetMixin, ScriptedLoadableModuleWidget,
                        VTKObservationMixin):
    applyText = "Apply"
    startFailureText = "Cannot start the interpolation."
    failureText = "Slice interpolation failed:"

    def __init__(self, parent=None) -> None:
        # Set before the base __init__: without a parent it already runs setup() (ScriptedLoadableModule.py),
        # and it reaches VTKObservationMixin.__init__ through super().__init__().
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        ScriptedLoadableModuleWidget.__init__(self, parent)

    def setup(self) -> None:
        """Build the panel without importing PyTorch (the method list comes from the torch-free catalog; the
        parameter node's ``Choice`` fills the method combo box)."""
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/SliceInterp.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = SliceInterpLogic()
        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.ui.spacingCheckBox.connect("toggled(bool)", self.onSpacingToggled)
        self.ui.methodComboBox.connect("currentTextChanged(QString)", self.onMethodChanged)
        self.observeSceneAndParameters()
        self.refuseUnsupportedSlicer()

    def onParameterNodeSet(self) -> None:
        self.onSpacingToggled(self._parameterNode.useSpacing)
        self.onMethodChanged(self._parameterNode.method)

    def onSpacingToggled(self, useSpacing: bool) -> None:
        self.ui.factorSpinBox.enabled = not useSpacing
        self.ui.spacingSpinBox.enabled = useSpacing

    def onMethodChanged(self, method: str) -> None:
        network = method == NETWORK_METHOD
        for widget in (self.ui.adaptCheckBox, self.ui.disagreementCheckBox, self.ui.disagreementSelector):
            widget.enabled = network

    def createJob(self):
        node = self._parameterNode
        network = node.method == NETWORK_METHOD
        return self.logic.upsampleAsync(
            node.inputVolume, node.outputVolume, factor=None if node.useSpacing else node.factor,
            spacing=node.spacing if node.useSpacing else None, method=node.method,
            disagreement=network and node.disagreement,
            disagreementNode=node.disagreementVolume if network and node.disagreement else None,
            adapt=network and node.adapt)

    def onJobSucceeded(self, outcome) -> None:
        node = self._parameterNode
        node.outputVolume = outcome.output_node
        if outcome.disagreement_node is not None:
            node.disagreementVolume = outcome.disagreement_node
        if slicer.app.layoutManager():  # none when Slicer runs without its main window
            slicer.util.resetSliceViews()
        self.ui.statusLabel.text = f"Done: {outcome.summary}"


class SliceInterpLogic(ScriptedLoadableModuleLogic):
    """Usable from Slicer's Python console: ``SliceInterpLogic().upsample(ctNode, outNode, factor=2)``."""

    def getParameterNode(self):
        return SliceInterpParameterNode(super().getParameterNode())

    def upsample(self, inputNode, outputNode, factor=None, spacing=None, method: str = DEFAULT_METHOD,
                 disagreementNode=None, adapt: bool = False, adaptMinutes: float = DEFAULT_ADAPT_MINUTES, device: str = DEFAULT_DEVICE,
                 progress=None, cancel=None):
        """Synchronous interpolation into the given nodes in this process; returns the engine's result."""
        from CTSynthesisCore.progress import no_progress
        from SliceInterpLib.slicer.nodes import upsample_nodes
        from SliceInterpLib.settings import UpsampleSettings

        settings = UpsampleSettings(method=method, device=device, adapt_minutes=adaptMinutes if adapt else None)
        return upsample_nodes(inputNode, outputNode, factor=factor, spacing=spacing, disagreement_node=disagreementNode,
                              settings=settings, progress=progress or no_progress, cancel=cancel)

    def upsampleAsync(self, inputNode, outputNode=None, factor=None, spacing=None, method: str = DEFAULT_METHOD,
                      disagreement: bool = False, disagreementNode=None, adapt: bool = False,
                      adaptMinutes: float = DEFAULT_ADAPT_MINUTES, device: str = DEFAULT_DEVICE):
        """The same in a background process: returns a not yet started ``UpsampleJob``; output nodes left as
        None are created on success."""
        from SliceInterpLib.slicer.nodes import UpsampleJob
        from SliceInterpLib.settings import UpsampleSettings

        settings = UpsampleSettings(method=method, device=device, adapt_minutes=adaptMinutes if adapt else None)
        return UpsampleJob(inputNode, outputNode, factor=factor, spacing=spacing, settings=settings,
                           disagreement=disagreement, disagreement_node=disagreementNode)


class SliceInterpTest(ScriptedLoadableModuleTest):
    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        """Runs the scenarios where PyTorch and MONAI are installed (see ``self_test_can_run``)."""
        if not self_test_can_run(self):
            return
        for test in (self.test_SliceInterp_scenario, self.test_SliceInterp_background):
            self.setUp()
            test()

    def test_SliceInterp_scenario(self):
        from SliceInterpLib.slicer.scenarios import run_upsample_scenario

        run_upsample_scenario(slicer.mrmlScene, self)

    def test_SliceInterp_background(self):
        from SliceInterpLib.slicer.scenarios import run_upsample_scenario

        run_upsample_scenario(slicer.mrmlScene, self, background=True)
