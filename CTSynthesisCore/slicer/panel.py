"""Pieces both Slicer module widgets use: citations, model summary, parameter-node plumbing, and the
background run behind an Apply button that turns into Cancel.

Imports neither slicer nor qt at module level, so it is testable under plain Python.
"""

from __future__ import annotations

PAPER_MRI_TO_CT = ("Lyu Q, Wang G. Conversion Between CT and MRI Images Using Diffusion and Score-Matching Models. "
                   "arXiv:2209.12104, 2022.")
PAPER_SLICE_INTERP = ("Fang C, Wang L, Zhang D, Xu J, Yuan Y, Han J. Incremental Cross-view Mutual Distillation for "
                      "Self-supervised Medical CT Synthesis. CVPR 2022, pp. 20645-20654.")
CONTRIBUTORS = ["CTSynthesis developers"]
ACKNOWLEDGEMENT = (
    "This extension re-implements methods from two papers; please cite them when you use it:<br>"
    f"[1] {PAPER_MRI_TO_CT}<br>[2] {PAPER_SLICE_INTERP}<br>"
    "Sample data: ProstateX (TCIA, CC BY 3.0), doi:10.7937/K9TCIA.2017.MURS5CL. "
    "Research use only; not for clinical decisions."
)


def model_summary(metadata: dict) -> str:
    """One line describing a shipped model for a selector tooltip or label, in plain words: what it is, what it
    was trained on, and its validation error named for what it is (simulated data, not a clinical figure)."""
    validation = metadata.get("validation", {})
    trained = metadata.get("training", {}).get("data", "training data not recorded")
    text = f"{metadata.get('name')}: {metadata.get('description', metadata.get('kind', ''))}; trained on {trained}"
    if isinstance(validation.get("mae_hu"), (int, float)):
        text += f"; MAE {validation['mae_hu']:.0f} HU on simulated validation slices (not a clinical figure)"
    return text


def facts_html(facts: dict[str, str]) -> str:
    """A run's facts (label -> value) as a small rich-text table for the panel's results box."""
    import html

    rows = "".join(f"<tr><td>{html.escape(label)}:&nbsp;</td><td>{html.escape(value)}</td></tr>"
                   for label, value in facts.items())
    return f"<table>{rows}</table>" if rows else "No details were reported for this run."


def bullets(lines: list[str]) -> str:
    """Lines as a bulleted list for a message box."""
    return "\n".join(f"• {text}" for text in lines)


def show_warnings(warnings: list[str]) -> None:
    """A run's warnings in one warning dialog (Slicer's ``warningDisplay`` only logs them in testing mode or
    without a main window: Base/Python/slicer/util.py)."""
    import slicer

    if warnings:
        slicer.util.warningDisplay(bullets(warnings), windowTitle="Check the result")


def self_test_can_run(test_case) -> bool:
    """Whether a module self-test can run here; if not, say why in the test log. slicer_add_python_unittest runs
    it in a freshly built Slicer, where the PyTorch extension has installed nothing yet."""
    from .dependencies import unmet_requirement_names

    missing = unmet_requirement_names()
    if missing:
        test_case.delayDisplay(f"{test_case.__class__.__name__} skipped: {', '.join(missing)} not installed")
    return not missing


class ParameterNodeWidgetMixin:
    """The parameter-node plumbing of both module widgets (Slicer's scripted-module template).

    The widget sets ``_parameterNode`` and ``_parameterNodeGuiTag`` to None in ``__init__`` (as Slicer's
    scripted-module template does, so ``enter``/``exit``/``cleanup`` work even after a failed ``setup``), and
    ``self.logic`` (with ``getParameterNode()``) and ``self.ui`` before calling
    :meth:`observeSceneAndParameters`; ``slicer`` is imported only when these run inside Slicer.
    """

    _parameterNode = None
    _parameterNodeGuiTag = None

    def observeSceneAndParameters(self) -> None:
        import slicer

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.initializeParameterNode()

    def cleanup(self) -> None:
        self.removeObservers()

    def enter(self) -> None:
        if getattr(self, "logic", None) is not None:  # None when setup() failed early
            self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None

    def onSceneStartClose(self, caller, event) -> None:
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        import slicer

        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.inputVolume:
            first = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
            if first:
                self._parameterNode.inputVolume = first

    def setParameterNode(self, inputParameterNode) -> None:
        import vtk

        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode.parameterNode, vtk.vtkCommand.ModifiedEvent,
                                self.onParameterNodeModified)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            # connectGui keeps only SlicerParameterName widgets in sync (parameterNodeWrapper/wrapper.py); the
            # hand-synced ones follow the node's ModifiedEvent, as the template's _checkCanApply does.
            self.addObserver(self._parameterNode.parameterNode, vtk.vtkCommand.ModifiedEvent,
                             self.onParameterNodeModified)
            self.onParameterNodeSet()

    def onParameterNodeModified(self, caller=None, event=None) -> None:
        if self._parameterNode:
            self.syncUnboundWidgets()

    def onParameterNodeSet(self) -> None:
        """Hook run when a parameter node is connected; by default only :meth:`syncUnboundWidgets`."""
        self.syncUnboundWidgets()

    def syncUnboundWidgets(self) -> None:
        """Hook for controls the parameter node cannot bind by itself: show its values (runs on every change)."""


class DeviceChoiceWidgetMixin:
    """The device combo box in words (``ui.deviceComboBox``, ``ui.deviceLabel``), synced by hand with the parameter
    node's ``device`` field (a bound combo box would show the raw names ``auto``/``cpu``/``cuda``)."""

    def setupDeviceChoice(self) -> None:
        from ..device import DEVICE_CHOICES, DEVICE_TITLES

        for device in DEVICE_CHOICES:
            self.ui.deviceComboBox.addItem(DEVICE_TITLES[device], device)
        self.ui.deviceComboBox.connect("currentIndexChanged(int)", self.onDeviceChanged)

    def syncDeviceChoice(self) -> None:
        """Show the node's device and which device a run is expected to use (without importing PyTorch)."""
        from ..device import describe_device_request

        device = self._parameterNode.device
        self.ui.deviceComboBox.setCurrentIndex(max(self.ui.deviceComboBox.findData(device), 0))
        self.ui.deviceLabel.text = describe_device_request(device)

    def onDeviceChanged(self, index: int) -> None:
        device = self.ui.deviceComboBox.itemData(index)
        if device and self._parameterNode and self._parameterNode.device != device:
            self._parameterNode.device = device


class BackgroundRunWidgetMixin:
    """An Apply button that starts a :class:`~CTSynthesisCore.slicer.node_job.NodeJob` and turns into Cancel.

    Listed before :class:`ParameterNodeWidgetMixin` in the widget's bases, so that closing the scene or the
    module cancels a running job first. A Qt timer polls the job's progress into ``ui.progressBar`` /
    ``ui.statusLabel`` (with elapsed time and an estimate); when it ends, ``onJobSucceeded(outcome)`` runs,
    or the one-line cause is shown in an error dialog. The widget sets ``applyText``, ``startFailureText``
    and ``failureText`` and implements ``createJob`` and ``onJobSucceeded``.
    """

    applyText = "Apply"
    startFailureText = "Cannot start."
    failureText = "Failed."
    _job = None
    _timer = None

    @property
    def jobRunning(self) -> bool:
        return self._job is not None

    def onApplyButton(self) -> None:
        """Cancel a running job; otherwise check the Python packages and start a new one."""
        import slicer

        from .dependencies import ensure_requirements_in_slicer

        if self.jobRunning:
            self.cancelJob()
            return
        if not ensure_requirements_in_slicer():  # its own dialogs; no wait cursor over the questions
            return
        if not self.confirmStart():
            return
        with slicer.util.tryWithErrorDisplay(self.startFailureText, waitCursor=True):
            self.startJob(self.createJob())

    def cleanup(self) -> None:
        """At module unload or application exit: stop polling, cancel the worker, forget the job."""
        self.stopJob()
        super().cleanup()

    def stopJob(self) -> None:
        """Stop the poll timer and the worker process tree, and drop both; the scene is not touched."""
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        if self._job is not None:
            self._job.cancel()
            self._job = None

    def refuseUnsupportedSlicer(self) -> None:
        """On a Slicer older than the extension supports, say so in the panel and disable Apply."""
        from .dependencies import running_slicer_problem

        problem = running_slicer_problem()
        if problem:
            self.ui.statusLabel.text = problem
            self.ui.applyButton.enabled = False

    def onSceneStartClose(self, caller, event) -> None:
        if self._job is not None:
            self.cancelJob()
        super().onSceneStartClose(caller, event)

    def startJob(self, job) -> None:
        import qt

        self._job = job.start()
        self.ui.applyButton.text = "Cancel"
        self.ui.progressBar.maximum, self.ui.progressBar.value = 0, 0  # busy until the first report
        self.ui.statusLabel.text = "Starting…"
        self._timer = qt.QTimer()
        self._timer.setInterval(200)
        self._timer.connect("timeout()", self.onJobPoll)
        self._timer.start()

    def cancelJob(self) -> None:
        """Stop the worker process tree; the scene stays as it was."""
        if self._job is not None:
            self.ui.statusLabel.text = "Cancelling…"
            self._job.cancel()
            self.onJobPoll()

    def onJobPoll(self) -> None:
        import slicer

        from .node_job import poll_job

        if self._job is None:
            return
        report = poll_job(self._job, **self.finishArguments())
        if report.progress is not None:
            self.ui.progressBar.maximum, self.ui.progressBar.value = report.progress.total, report.progress.done
        if report.status:
            self.ui.statusLabel.text = report.status
        if report.running:
            return
        self._timer.stop()
        self._timer, self._job = None, None
        self.ui.applyButton.text = self.applyText
        self.ui.progressBar.maximum, self.ui.progressBar.value = 1, int(report.outcome is not None)
        if report.error:
            slicer.util.errorDisplay(f"{self.failureText}\n{report.error}")
        elif report.outcome is not None:
            self.onJobSucceeded(report.outcome)

    def finishArguments(self) -> dict:
        return {}

    def confirmStart(self) -> bool:
        """Whether to start (a widget asks before a long run); by default yes."""
        return True

    def createJob(self):
        """The not yet started job for the panel's current settings."""
        raise NotImplementedError

    def onJobSucceeded(self, outcome) -> None:
        raise NotImplementedError
