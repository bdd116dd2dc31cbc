"""MRML node level of SliceInterp: a CT volume node in, a finer-sliced volume node (and disagreement) out.

:func:`upsample_nodes` runs in this process (console, tests); :class:`UpsampleJob` hands an
:class:`~SliceInterpLib.settings.UpsampleRequest` to the worker ``SliceInterpLib.jobs`` in a child process
(the panel), so the GUI stays responsive and imports no PyTorch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from CTSynthesisCore.errors import UserInputError
from CTSynthesisCore.progress import CancelToken, ProgressCallback, no_progress
from CTSynthesisCore.slicer.display import set_uncertainty_display, show_in_slice_views
from CTSynthesisCore.slicer.mrml import image_from_volume_node, place_under_transform, update_volume_node_from_image
from CTSynthesisCore.slicer.node_job import NodeJob, check_output_nodes, target_node

from ..catalog import NETWORK_METHOD
from ..settings import JOB_KIND, UpsampleRequest, UpsampleSettings

WORKER = "SliceInterpLib.jobs"
WORKER_PACKAGES = ("SliceInterpLib", "CTSynthesisCore")


@dataclass
class UpsampleOutcome:
    """The nodes a background run filled or created, and its closing summary."""

    output_node: object
    disagreement_node: object | None
    summary: str = ""
    warnings: list[str] = field(default_factory=list)
    facts: dict[str, str] = field(default_factory=dict)  # for the panel's results box (SliceInterpLib.jobs)


def check_upsample_nodes(input_node, output_node, disagreement_node, settings: UpsampleSettings,
                         disagreement: bool = False) -> None:
    check_output_nodes(input_node, output_node, disagreement_node, what="input CT volume")
    if (disagreement or disagreement_node is not None) and settings.method != NETWORK_METHOD:
        raise UserInputError("the disagreement volume needs the crossview method")


def show_upsampled(input_node, output_node, disagreement_node, opacity: float = 0.5) -> None:
    """The input's display settings on the result; the disagreement as an Inferno overlay; both in the views."""
    output_node.CreateDefaultDisplayNodes()
    if input_node is not None and input_node.GetDisplayNode() is not None:
        output_node.GetDisplayNode().CopyContent(input_node.GetDisplayNode())
    if disagreement_node is not None:
        set_uncertainty_display(disagreement_node, "Disagreement")
    show_in_slice_views(output_node.GetScene(), output_node, disagreement_node, opacity)


def upsample_nodes(input_node, output_node, factor: int | None = None, spacing: float | None = None,
                   disagreement_node=None, settings: UpsampleSettings | None = None,
                   progress: ProgressCallback = no_progress, cancel: CancelToken | None = None):
    """Interpolate slices of ``input_node`` into ``output_node`` (and the views' disagreement into
    ``disagreement_node``, cross-view only) in this process and return the engine's ``UpsampleResult``;
    output nodes are filled only on success."""
    from CTSynthesisCore.volume_io import check_scalar_volume

    from ..classical import resolve_factor
    from ..upsample import upsample

    settings = settings or UpsampleSettings()
    check_upsample_nodes(input_node, output_node, disagreement_node, settings)
    image = image_from_volume_node(input_node)
    check_scalar_volume(image, "input CT", min_slices=3)
    slice_spacing, _ = resolve_factor(image, factor, spacing)
    result = upsample(image, slice_spacing, settings, progress=progress, cancel=cancel)
    update_volume_node_from_image(output_node, result.image)
    if disagreement_node is not None:
        update_volume_node_from_image(disagreement_node, result.disagreement)
    place_under_transform(input_node.GetTransformNodeID(), output_node, disagreement_node)
    show_upsampled(input_node, output_node, disagreement_node)
    return result


class UpsampleJob(NodeJob):
    """Slice interpolation in a child process; :meth:`finish` fills (or creates) the output nodes on success.

    ``disagreement`` asks for the disagreement volume (into ``disagreement_node``, or a new node).
    """

    def __init__(self, input_node, output_node, factor: int | None = None, spacing: float | None = None,
                 settings: UpsampleSettings | None = None, disagreement: bool = False, disagreement_node=None) -> None:
        settings = settings or UpsampleSettings()
        disagreement = disagreement or disagreement_node is not None
        check_upsample_nodes(input_node, output_node, disagreement_node, settings, disagreement)
        self.input_node, self.output_node, self.disagreement_node = input_node, output_node, disagreement_node
        self.disagreement, self.label = disagreement, f"x{factor}" if factor else f"{spacing:g} mm"
        request = UpsampleRequest(settings, factor, spacing, disagreement).checked()
        super().__init__(input_node, WORKER, WORKER_PACKAGES, JOB_KIND, request)

    def finish(self, opacity: float = 0.5) -> UpsampleOutcome:
        """Read the results (raising the child's error or Cancelled), then fill nodes and set up display."""
        result, images = self.collect()
        outcome = UpsampleOutcome(target_node(self.scene, self.output_node, f"{self.input_name} {self.label}"), None,
                                  result.summary, result.warnings, result.facts)
        update_volume_node_from_image(outcome.output_node, images["output"][0])
        if self.disagreement:
            outcome.disagreement_node = target_node(self.scene, self.disagreement_node,
                                                   f"{self.input_name} {self.label} disagreement")
            update_volume_node_from_image(outcome.disagreement_node, images["disagreement"][0])
        place_under_transform(self.transform_id(), outcome.output_node, outcome.disagreement_node)
        show_upsampled(self.input_node, outcome.output_node, outcome.disagreement_node, opacity)
        return outcome
