"""MRML node level of SliceInterp: a CT volume node in, a finer-sliced volume node (and disagreement) out.

:func:`upsample_nodes` runs in this process (console, tests); :class:`UpsampleJob` runs
``sliceinterp upsample --worker`` in a child process (the panel).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from CTSynthesisCore.slicer.display import set_uncertainty_display, show_in_slice_views
from CTSynthesisCore.errors import UserInputError
from CTSynthesisCore.slicer.mrml import image_from_volume_node, place_under_transform, update_volume_node_from_image
from CTSynthesisCore.slicer.node_job import NodeJob, check_output_nodes, target_node
from CTSynthesisCore.progress import CancelToken, ProgressCallback, no_progress
from CTSynthesisCore.volume_io import check_scalar_volume

from ..classical import resolve_factor
from ..upsample import UpsampleResult, UpsampleSettings, upsample

WORKER_PACKAGES = ("SliceInterpLib", "CTSynthesisCore")


@dataclass
class UpsampleOutcome:
    """The nodes a background run filled or created, and its closing summary."""

    output_node: object
    uncertainty_node: object | None
    summary: str = ""


def check_upsample_nodes(input_node, output_node, uncertainty_node, settings: UpsampleSettings,
                         uncertainty: bool = False) -> None:
    check_output_nodes(input_node, output_node, uncertainty_node, what="input CT volume")
    if (uncertainty or uncertainty_node is not None) and settings.method != "crossview":
        raise UserInputError("the disagreement volume needs the crossview method")


def show_upsampled(input_node, output_node, uncertainty_node, opacity: float = 0.5) -> None:
    """The input's display settings on the result; the disagreement as an Inferno overlay; both in the views."""
    output_node.CreateDefaultDisplayNodes()
    if input_node is not None and input_node.GetDisplayNode() is not None:
        output_node.GetDisplayNode().CopyContent(input_node.GetDisplayNode())
    if uncertainty_node is not None:
        set_uncertainty_display(uncertainty_node, "Disagreement")
    show_in_slice_views(output_node.GetScene(), output_node, uncertainty_node, opacity)


def upsample_nodes(input_node, output_node, factor: int | None = None, spacing: float | None = None,
                   method: str = "crossview", uncertainty_node=None, settings: UpsampleSettings | None = None,
                   progress: ProgressCallback = no_progress, cancel: CancelToken | None = None) -> UpsampleResult:
    """Interpolate slices of ``input_node`` into ``output_node`` (and the views' disagreement into
    ``uncertainty_node``, cross-view only) in this process; output nodes are filled only on success."""
    settings = settings or UpsampleSettings(method=method)
    check_upsample_nodes(input_node, output_node, uncertainty_node, settings)
    image = image_from_volume_node(input_node)
    check_scalar_volume(image, "input CT", min_slices=3)
    slice_spacing, _ = resolve_factor(image, factor, spacing)
    result = upsample(image, slice_spacing, settings, progress=progress, cancel=cancel)
    update_volume_node_from_image(output_node, result.image)
    if uncertainty_node is not None:
        update_volume_node_from_image(uncertainty_node, result.uncertainty)
    place_under_transform(input_node.GetTransformNodeID(), output_node, uncertainty_node)
    show_upsampled(input_node, output_node, uncertainty_node)
    return result


def upsample_arguments(folder: Path, factor: int | None, spacing: float | None, settings: UpsampleSettings,
                       uncertainty: bool) -> list[str]:
    """``sliceinterp upsample`` arguments for a job folder (input.mha in, output.mha/uncertainty.mha out)."""
    if (factor is None) == (spacing is None):
        raise UserInputError("give either a factor or a target slice spacing")
    arguments = ["upsample", str(folder / "input.mha"), "--output", str(folder / "output.mha"),
                 "--method", settings.method, "--device", settings.device, "--seed", str(settings.seed),
                 "--precision", settings.precision]
    if settings.chunk is not None:
        arguments += ["--batch-size", str(settings.chunk)]
    arguments += ["--factor", str(factor)] if factor is not None else ["--spacing", repr(float(spacing))]
    if settings.model:
        arguments += ["--model", str(settings.model)]
    if settings.adapt_minutes is not None:
        arguments += ["--adapt", "--adapt-minutes", repr(float(settings.adapt_minutes))]
    if uncertainty:
        arguments += ["--uncertainty", str(folder / "uncertainty.mha")]
    return arguments


class UpsampleJob(NodeJob):
    """Slice interpolation in a child process; :meth:`finish` fills (or creates) the output nodes on success.

    ``uncertainty`` asks for the disagreement volume (into ``uncertainty_node``, or a new node).
    """

    def __init__(self, input_node, output_node, factor: int | None = None, spacing: float | None = None,
                 settings: UpsampleSettings | None = None, uncertainty: bool = False, uncertainty_node=None) -> None:
        settings = settings or UpsampleSettings()
        uncertainty = uncertainty or uncertainty_node is not None
        check_upsample_nodes(input_node, output_node, uncertainty_node, settings, uncertainty)
        self.input_node, self.output_node, self.uncertainty_node = input_node, output_node, uncertainty_node
        self.uncertainty, self.label = uncertainty, f"x{factor}" if factor else f"{spacing:g} mm"
        super().__init__(input_node, "SliceInterpLib.cli", WORKER_PACKAGES,
                         lambda folder: upsample_arguments(folder, factor, spacing, settings, uncertainty))

    def finish(self, opacity: float = 0.5) -> UpsampleOutcome:
        """Read the results (raising the child's error or Cancelled), then fill nodes and set up display."""
        images = self.collect(("output.mha", "uncertainty.mha"))
        outcome = UpsampleOutcome(target_node(self.scene, self.output_node, f"{self.input_name} {self.label}"), None,
                                  self.summary())
        update_volume_node_from_image(outcome.output_node, images["output.mha"])
        if self.uncertainty:
            outcome.uncertainty_node = target_node(self.scene, self.uncertainty_node,
                                                   f"{self.input_name} {self.label} disagreement")
            update_volume_node_from_image(outcome.uncertainty_node, images["uncertainty.mha"])
        place_under_transform(self.transform_id(), outcome.output_node, outcome.uncertainty_node)
        show_upsampled(self.input_node, outcome.output_node, outcome.uncertainty_node, opacity)
        return outcome
