"""Pieces both Slicer modules use: citations, model list text, the sync progress bridge.

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
    """One line describing a shipped model for a selector tooltip or label."""
    metrics = metadata.get("validation", {})
    scores = ", ".join(f"{k} {v:.3g}" for k, v in metrics.items() if isinstance(v, (int, float)))
    trained = metadata.get("training", {}).get("data", "training data not recorded")
    return f"{metadata.get('name')}: {metadata.get('description', metadata.get('kind', ''))}; {trained}" + (
        f"; validation {scores}" if scores else "")


class ParameterNodeWidgetMixin:
    """The parameter-node plumbing of both module widgets (Slicer's scripted-module template).

    The widget sets ``self.logic`` (with ``getParameterNode()``) and ``self.ui`` before calling
    :meth:`observeSceneAndParameters`; ``slicer`` is imported only when these run inside Slicer.
    """

    def observeSceneAndParameters(self) -> None:
        import slicer

        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.initializeParameterNode()

    def cleanup(self) -> None:
        self.removeObservers()

    def enter(self) -> None:
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
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
