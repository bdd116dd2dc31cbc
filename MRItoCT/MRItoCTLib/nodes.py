"""MRML node level of MRItoCT: volume nodes in, filled output nodes out, display set up.

Imports only ``slicer``/``vtk`` (available in Slicer and in the PyPI package
``slicer-core``), so it runs in Slicer's Python console and in pytest alike.
"""

from __future__ import annotations

from CTSynthesisCore.errors import UserInputError
from CTSynthesisCore.mrml import image_from_volume_node, update_volume_node_from_image
from CTSynthesisCore.progress import CancelToken, ProgressCallback, no_progress

from .model import DEFAULT_MODEL, load_model
from .pipeline import SynthesisResult, SynthesisSettings, synthesize

CT_WINDOW, CT_LEVEL = 400.0, 40.0


def check_nodes(input_node, *output_nodes) -> None:
    """Refuse a missing input or an output node that is the input node."""
    if input_node is None:
        raise UserInputError("select an input MRI volume")
    for node in output_nodes:
        if node is not None and node.GetID() == input_node.GetID():
            raise UserInputError("an output volume cannot be the input volume; choose 'Create new volume'")


def synthesize_nodes(input_node, ct_node, uncertainty_node, settings: SynthesisSettings, model: str = DEFAULT_MODEL,
                     device: str = "auto", progress: ProgressCallback = no_progress,
                     cancel: CancelToken | None = None) -> SynthesisResult:
    """Run synthesis on a volume node; output nodes are filled only after everything succeeded."""
    check_nodes(input_node, ct_node, uncertainty_node)
    image = image_from_volume_node(input_node)
    result = synthesize(image, load_model(model), settings, device=device, progress=progress, cancel=cancel)
    update_volume_node_from_image(ct_node, result.ct)
    set_ct_display(ct_node)
    if uncertainty_node is not None:
        update_volume_node_from_image(uncertainty_node, result.uncertainty)
    return result


def set_ct_display(node) -> None:
    """Grey colour map with a soft-tissue CT window/level."""
    node.CreateDefaultDisplayNodes()
    display = node.GetDisplayNode()
    display.AutoWindowLevelOff()
    display.SetWindowLevel(CT_WINDOW, CT_LEVEL)
