"""How results appear in Slicer: CT window/level, an Inferno uncertainty overlay with a legend,
slice-view layers, and Monte-Carlo samples as a browsable sequence.

Works on any ``vtkMRMLScene`` (Slicer or ``slicer-core``); Slicer's module logics are used
when they are there (colour legend, sequence proxies) and plain MRML calls otherwise.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from .mrml import update_volume_node_from_image

CT_WINDOW, CT_LEVEL = 400.0, 40.0
INFERNO_NAME = "Inferno"
OWN_INFERNO_NAME = "CTSynthesis Inferno"
# matplotlib's "inferno" sampled at 17 points (black -> purple -> orange -> pale yellow), interpolated to 256.
INFERNO_ANCHORS = np.array([
    (0.001, 0.000, 0.014), (0.042, 0.028, 0.141), (0.129, 0.047, 0.291), (0.238, 0.037, 0.396),
    (0.342, 0.062, 0.429), (0.441, 0.099, 0.432), (0.541, 0.135, 0.415), (0.640, 0.171, 0.381),
    (0.736, 0.216, 0.330), (0.822, 0.275, 0.266), (0.894, 0.353, 0.194), (0.947, 0.449, 0.115),
    (0.978, 0.558, 0.035), (0.988, 0.675, 0.065), (0.975, 0.798, 0.206), (0.948, 0.917, 0.411),
    (0.988, 0.998, 0.645)])


def inferno_table(entries: int = 256) -> np.ndarray:
    """RGB rows of the Inferno colour map, dark (low) to bright (high)."""
    positions = np.linspace(0.0, 1.0, len(INFERNO_ANCHORS))
    wanted = np.linspace(0.0, 1.0, entries)
    return np.stack([np.interp(wanted, positions, INFERNO_ANCHORS[:, c]) for c in range(3)], axis=1)


def nodes_of_class(scene, class_name: str, name: str | None = None) -> list:
    """The scene's nodes of a class (and name). ``vtkMRMLScene::GetNodesByClass(ByName)`` hands the caller a new
    collection ("You are responsible for deleting the collection", vtkMRMLScene.h); it is released here, as
    Slicer's ``slicer.util.getNodesByClass`` does with ``UnRegister``."""
    collection = scene.GetNodesByClassByName(class_name, name) if name else scene.GetNodesByClass(class_name)
    collection.UnRegister(None)
    return [collection.GetItemAsObject(index) for index in range(collection.GetNumberOfItems())]


def inferno_color_node(scene):
    """Slicer's own "Inferno" colour node when the scene has it, otherwise one made from the table."""
    for name in (INFERNO_NAME, OWN_INFERNO_NAME):
        nodes = nodes_of_class(scene, "vtkMRMLColorNode", name)
        if nodes:
            return nodes[0]
    node = scene.AddNewNodeByClass("vtkMRMLColorTableNode", OWN_INFERNO_NAME)
    node.SetTypeToUser()
    table = inferno_table()
    node.SetNumberOfColors(len(table))
    for index, (red, green, blue) in enumerate(table):
        node.SetColor(index, f"{index}", red, green, blue, 1.0)
    node.SetAttribute("Category", "CTSynthesis")
    return node


def set_ct_display(node) -> None:
    """Grey colour map with a soft-tissue CT window/level."""
    node.CreateDefaultDisplayNodes()
    display = node.GetDisplayNode()
    display.AutoWindowLevelOff()
    display.SetWindowLevel(CT_WINDOW, CT_LEVEL)


def overlay_range(values: np.ndarray) -> tuple[float, float]:
    """Colour range of an uncertainty overlay: 0 to the 99th percentile of its non-zero voxels."""
    positive = values[values > 0]
    high = float(np.percentile(positive, 99)) if positive.size else 1.0
    return 0.0, max(high, 1e-3)


def set_uncertainty_display(node, title: str, unit: str = "HU"):
    """Inferno colours from 0 to the 99th percentile; voxels below 1 % of it are transparent
    in the slice views; a colour legend titled ``title (unit)``. Returns the legend node (or None)."""
    import slicer

    node.CreateDefaultDisplayNodes()
    display = node.GetDisplayNode()
    display.SetAndObserveColorNodeID(inferno_color_node(node.GetScene()).GetID())
    low, high = overlay_range(slicer.util.arrayFromVolume(node))
    display.AutoWindowLevelOff()
    display.SetWindowLevelMinMax(low, high)
    display.AutoThresholdOff()
    display.SetLowerThreshold(0.01 * high)
    display.SetUpperThreshold(float(np.finfo(np.float32).max))
    display.ApplyThresholdOn()
    return add_color_legend(node, f"{title} ({unit})", f"%.0f {unit}")


def add_color_legend(node, title: str, label_format: str):
    """A colour legend for ``node`` in the slice views (Slicer's Colors logic when available)."""
    import slicer

    legend = None
    colors = getattr(getattr(slicer, "modules", None), "colors", None)
    if colors is not None:
        legend = colors.logic().AddDefaultColorLegendDisplayNode(node)
    elif node.GetScene().IsNodeClassRegistered("vtkMRMLColorLegendDisplayNode"):
        legend = node.GetScene().AddNewNodeByClass("vtkMRMLColorLegendDisplayNode")
        node.AddAndObserveDisplayNodeID(legend.GetID())
        legend.SetAndObservePrimaryDisplayNode(node.GetDisplayNode())
    if legend is None:
        return None
    legend.SetTitleText(title)
    legend.SetLabelFormat(label_format)
    legend.SetVisibility(True)
    return legend


def slice_composites(scene) -> list:
    """The slice composite node of every slice view (which volumes each view shows)."""
    return nodes_of_class(scene, "vtkMRMLSliceCompositeNode")


def show_in_slice_views(scene, background, foreground=None, opacity: float = 0.5) -> None:
    """Put ``background`` (and ``foreground`` at ``opacity``) in every slice view of the scene."""
    for composite in slice_composites(scene):
        composite.SetBackgroundVolumeID(background.GetID() if background else None)
        composite.SetForegroundVolumeID(foreground.GetID() if foreground else None)
    set_foreground_opacity(scene, opacity)


def set_foreground_opacity(scene, opacity: float) -> None:
    """The overlay opacity of every slice view."""
    for composite in slice_composites(scene):
        composite.SetForegroundOpacity(opacity)


def add_volume_sequence(scene, images: list[sitk.Image], name: str):
    """The images as a sequence node (index 0..n-1) with a browser, for the Sequences module.

    Returns (sequence node, browser node); the browser is None where the scene cannot make one.
    """
    import slicer

    sequence = scene.AddNewNodeByClass("vtkMRMLSequenceNode", name)
    sequence.SetIndexName("sample")
    sequence.SetIndexUnit("")
    for index, image in enumerate(images):
        frame = slicer.vtkMRMLScalarVolumeNode()
        frame.SetName(f"{name} {index}")
        update_volume_node_from_image(frame, image)
        sequence.SetDataNodeAtValue(frame, str(index))
    if not scene.IsNodeClassRegistered("vtkMRMLSequenceBrowserNode"):
        return sequence, None
    browser = scene.AddNewNodeByClass("vtkMRMLSequenceBrowserNode", f"{name} browser")
    browser.SetAndObserveMasterSequenceNodeID(sequence.GetID())  # the Sequences logic observes this and
    return sequence, browser  # creates the proxy node (vtkSlicerSequencesLogic ProcessMRMLNodesEvents)
