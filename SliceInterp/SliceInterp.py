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
    DeviceChoiceWidgetMixin,
    ParameterNodeWidgetMixin,
    self_test_can_run,
)
from CTSynthesisCore.device import DEFAULT_DEVICE, DEVICE_CHOICES  # noqa: E402
from SliceInterpLib.catalog import (  # noqa: E402 - torch-free
    DEFAULT_ADAPT_MINUTES,
    DEFAULT_FACTOR,
    DEFAULT_METHOD,
    METHODS,
    NETWORK_METHOD,
    SAMPLE,
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

    register_sample_data((SAMPLE,))


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
    device: Annotated[str, Choice(list(DEVICE_CHOICES))] = DEFAULT_DEVICE  # synced by hand (titles in words)
    disagreementOpacity: Annotated[float, WithinRange(0.0, 1.0)] = 0.5


class SliceInterpWidget(BackgroundRunWidgetMixin, DeviceChoiceWidgetMixin, ParameterNodeWidgetMixin,
                        ScriptedLoadableModuleWidget, VTKObservationMixin):
    applyText = "Interpolate slices"
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
        self.ui.opacitySlider.connect("valueChanged(double)", self.onOpacityChanged)
        self.setupDeviceChoice()
        self.observeSceneAndParameters()
        self.refuseUnsupportedSlicer()

    def syncUnboundWidgets(self) -> None:
        """Device in words, the controls that apply to the chosen method, and the spacing before and after."""
        node = self._parameterNode
        self.syncDeviceChoice()
        self.ui.factorSpinBox.enabled = not node.useSpacing
        self.ui.spacingSpinBox.enabled = node.useSpacing
        network = node.method == NETWORK_METHOD
        for widget in (self.ui.adaptCheckBox, self.ui.disagreementCheckBox, self.ui.disagreementSelector,
                       self.ui.deviceComboBox):
            widget.enabled = network
        self.ui.opacitySlider.enabled = network and node.disagreement
        self.ui.spacingSummaryLabel.text = self.logic.spacingText(
            node.inputVolume, None if node.useSpacing else node.factor, node.spacing if node.useSpacing else None)

    def onOpacityChanged(self, value: float) -> None:
        from CTSynthesisCore.slicer.display import set_foreground_opacity

        set_foreground_opacity(slicer.mrmlScene, value)

    def createJob(self):
        node = self._parameterNode
        network = node.method == NETWORK_METHOD
        return self.logic.upsampleAsync(
            node.inputVolume, node.outputVolume, factor=None if node.useSpacing else node.factor,
            spacing=node.spacing if node.useSpacing else None, method=node.method,
            disagreement=network and node.disagreement,
            disagreementNode=node.disagreementVolume if network and node.disagreement else None,
            adapt=network and node.adapt, device=node.device)

    def finishArguments(self) -> dict:
        return {"opacity": self.ui.opacitySlider.value}

    def onJobSucceeded(self, outcome) -> None:
        from CTSynthesisCore.slicer.panel import facts_html, show_warnings

        node = self._parameterNode
        node.outputVolume = outcome.output_node
        if outcome.disagreement_node is not None:
            node.disagreementVolume = outcome.disagreement_node
            high = outcome.disagreement_node.GetDisplayNode().GetWindowLevelMax()  # set by set_uncertainty_display
            self.ui.legendLabel.text = (
                f"Disagreement (Inferno): 0 HU black → {high:.0f} HU pale yellow (this run's scale); near-zero voxels "
                "transparent. It is where the network's coronal and sagittal views differ: it ranks where the new "
                "slices are less certain, it is not an error bar, and observed slices have none.")
        if slicer.app.layoutManager():  # none when Slicer runs without its main window
            slicer.util.resetSliceViews()
        self.ui.statusLabel.text = f"Done: {outcome.summary}"
        self.ui.resultsLabel.text = facts_html(outcome.facts)
        self.ui.resultsCollapsibleButton.collapsed = False
        show_warnings(outcome.warnings)


class SliceInterpLogic(ScriptedLoadableModuleLogic):
    """Usable from Slicer's Python console: ``SliceInterpLogic().upsample(ctNode, outNode, factor=2)``."""

    def getParameterNode(self):
        return SliceInterpParameterNode(super().getParameterNode())

    def spacingText(self, inputNode, factor: int | None, spacing: float | None) -> str:
        """'5 mm -> 2.5 mm (factor 2)': the input's slice spacing and the one the factor or target gives."""
        if inputNode is None or inputNode.GetImageData() is None:
            return "Choose an input volume to see the new slice spacing."
        old = inputNode.GetSpacing()[2]
        if factor is not None:
            return f"Slice spacing {old:.4g} mm → {old / factor:.4g} mm (factor {factor})."
        if spacing >= old:
            return f"The target {spacing:.4g} mm is not finer than the input's {old:.4g} mm."
        return f"Slice spacing {old:.4g} mm → {spacing:.4g} mm (factor {old / spacing:.3g})."

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
