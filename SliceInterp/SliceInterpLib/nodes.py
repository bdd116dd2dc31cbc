"""MRML node level of SliceInterp: a CT volume node in, a finer-sliced volume node out."""

from __future__ import annotations

from CTSynthesisCore.errors import UserInputError
from CTSynthesisCore.mrml import image_from_volume_node, update_volume_node_from_image
from CTSynthesisCore.volume_io import check_scalar_volume

from .classical import resolve_factor, upsample_classical


def upsample_nodes(input_node, output_node, factor: int | None = None, spacing: float | None = None,
                   method: str = "linear"):
    """Interpolate slices of ``input_node`` into ``output_node`` (filled only on success)."""
    if input_node is None:
        raise UserInputError("select an input CT volume")
    if output_node is not None and output_node.GetID() == input_node.GetID():
        raise UserInputError("the output volume cannot be the input volume; choose 'Create new volume'")
    image = image_from_volume_node(input_node)
    check_scalar_volume(image, "input CT", min_slices=3)
    slice_spacing, _ = resolve_factor(image, factor, spacing)
    result = upsample_classical(image, slice_spacing, method)
    update_volume_node_from_image(output_node, result)
    output_node.CreateDefaultDisplayNodes()
    if input_node.GetDisplayNode() is not None:
        output_node.GetDisplayNode().CopyContent(input_node.GetDisplayNode())
    return result
