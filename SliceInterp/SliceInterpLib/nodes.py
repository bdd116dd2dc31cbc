"""MRML node level of SliceInterp: a CT volume node in, a finer-sliced volume node (and disagreement) out."""

from __future__ import annotations

from CTSynthesisCore.errors import UserInputError
from CTSynthesisCore.mrml import image_from_volume_node, update_volume_node_from_image
from CTSynthesisCore.progress import CancelToken, ProgressCallback, no_progress
from CTSynthesisCore.volume_io import check_scalar_volume

from .classical import resolve_factor
from .upsample import UpsampleResult, UpsampleSettings, upsample


def upsample_nodes(input_node, output_node, factor: int | None = None, spacing: float | None = None,
                   method: str = "crossview", uncertainty_node=None, settings: UpsampleSettings | None = None,
                   progress: ProgressCallback = no_progress, cancel: CancelToken | None = None) -> UpsampleResult:
    """Interpolate slices of ``input_node`` into ``output_node`` (and the views' disagreement into
    ``uncertainty_node``, cross-view only); output nodes are filled only on success."""
    if input_node is None:
        raise UserInputError("select an input CT volume")
    for node in (output_node, uncertainty_node):
        if node is not None and node.GetID() == input_node.GetID():
            raise UserInputError("an output volume cannot be the input volume; choose 'Create new volume'")
    settings = settings or UpsampleSettings(method=method)
    if uncertainty_node is not None and settings.method != "crossview":
        raise UserInputError("the disagreement volume needs the crossview method")
    image = image_from_volume_node(input_node)
    check_scalar_volume(image, "input CT", min_slices=3)
    slice_spacing, _ = resolve_factor(image, factor, spacing)
    result = upsample(image, slice_spacing, settings, progress=progress, cancel=cancel)
    update_volume_node_from_image(output_node, result.image)
    output_node.CreateDefaultDisplayNodes()
    if input_node.GetDisplayNode() is not None:
        output_node.GetDisplayNode().CopyContent(input_node.GetDisplayNode())
    if uncertainty_node is not None:
        update_volume_node_from_image(uncertainty_node, result.uncertainty)
        uncertainty_node.CreateDefaultDisplayNodes()
    return result
