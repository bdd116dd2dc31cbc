"""How 3D Slicer binds a widget to a parameter-node field, re-stated from Slicer's source so tests can apply it.

Source: Slicer ``Base/Python/slicer/parameterNodeWrapper/guiConnectors.py`` (v5.10.0, unchanged in
v5.12.3 and main): ``createGuiConnector`` takes the first registered connector whose
``canRepresent(widget, datatype)`` is true, comparing ``type(widget)`` exactly (so a .ui widget is
matched by its declared class), and raises ``RuntimeError`` when none is. ``wrapper.py``
``_connectParametersToGui`` builds every connector of a panel before connecting any, so one failure
leaves the whole panel unbound. Each rule below cites the connector class it restates.
"""

from __future__ import annotations

import enum
import typing
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path

INT_MIN, INT_MAX = -(2**31), 2**31 - 1


@dataclass(frozen=True)
class BoundWidget:
    """A widget of a .ui file that names a parameter through its ``SlicerParameterName`` property."""

    name: str  # objectName
    widget_class: str  # class declared in the .ui
    parameter: str


@dataclass(frozen=True)
class Binding:
    """What Slicer's connector does with a widget: its name, and the combo-box items it writes (if any)."""

    connector: str
    items: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None


def bound_widgets(ui_path: Path) -> list[BoundWidget]:
    """Every widget of a .ui file carrying ``SlicerParameterName`` (a dynamic property, ``stdset="0"``)."""
    root = ElementTree.parse(ui_path).getroot()
    found = []
    for widget in root.iter("widget"):
        for prop in widget.findall("property"):
            if prop.get("name") == "SlicerParameterName":
                found.append(BoundWidget(widget.get("name"), widget.get("class"), prop.find("string").text))
    return found


def split_annotation(datatype) -> tuple[type, tuple]:
    """(bare type, annotations) of ``Annotated[T, ...]`` or of a plain type (parameterNodeWrapper/util.py)."""
    if typing.get_origin(datatype) is typing.Annotated:
        bare, *annotations = typing.get_args(datatype)
        return bare, tuple(annotations)
    return datatype, ()


def first_annotation(annotations: tuple, class_name: str):
    """The first annotation whose class is named ``class_name`` (``findFirstAnnotation`` by name)."""
    return next((a for a in annotations if type(a).__name__ == class_name), None)


def bounds(annotations: tuple) -> tuple[float | None, float | None]:
    """(minimum, maximum) from ``WithinRange`` or ``Minimum``/``Maximum`` annotations."""
    within = first_annotation(annotations, "WithinRange")
    if within is not None:
        return within.minimum, within.maximum
    low, high = first_annotation(annotations, "Minimum"), first_annotation(annotations, "Maximum")
    return (low.minimum if low else None), (high.maximum if high else None)


def is_mrml_node_type(bare) -> bool:
    """A vtkMRMLNode subclass (``isNodeOrUnionOfNodes`` for the single-class case)."""
    return isinstance(bare, type) and any(base.__name__ == "vtkMRMLNode" for base in bare.__mro__)


def connector_for(widget_class: str, datatype) -> Binding:
    """The connector Slicer creates for a widget of ``widget_class`` bound to ``datatype``; raises
    ``RuntimeError`` with Slicer's message where Slicer does."""
    bare, annotations = split_annotation(datatype)
    low, high = bounds(annotations)
    bounded = low is not None and high is not None
    if bare is bool and widget_class in ("QCheckBox", "ctkCheckBox"):
        return Binding("QCheckBoxToBoolConnector")
    if bare is bool and widget_class in ("QPushButton", "ctkCheckablePushButton"):
        return Binding(f"{widget_class}ToBoolConnector")
    if bare is int and widget_class in ("QSlider", "QSpinBox"):  # QSliderOrSpinBoxToIntConnector
        if widget_class == "QSlider" and not bounded:
            raise RuntimeError("Cannot have a connection to QSlider where the int type is unbounded.")
        return Binding("QSliderOrSpinBoxToIntConnector", (), INT_MIN if low is None else low,
                       INT_MAX if high is None else high)
    if bare in (float, int) and widget_class in ("QDoubleSpinBox", "ctkSliderWidget", "qMRMLSliderWidget",
                                                 "ctkDoubleSlider", "ctkDoubleSpinBox", "qMRMLSpinBox"):
        if widget_class in ("ctkSliderWidget", "qMRMLSliderWidget") and not bounded:
            raise RuntimeError("Cannot have a connection to ctkSliderWidget where the float types is unbounded.")
        return Binding("QDoubleSpinBoxCtkSliderWidgetToFloatIntConnector", (),
                       float("-inf") if low is None else low, float("inf") if high is None else high)
    if widget_class in ("QComboBox", "ctkComboBox") and bare in (int, float, str, bool):
        choice = first_annotation(annotations, "Choice")
        if choice is None:  # QComboBoxToStringableConnector.create
            raise RuntimeError("ComboBoxToStringableConnector requires the Choice annotation to be used.")
        return Binding("QComboBoxToStringableConnector", tuple(str(c) for c in choice.choices))
    if widget_class in ("QComboBox", "ctkComboBox") and isinstance(bare, type) and issubclass(bare, enum.Enum):
        label = getattr(bare, "label", lambda member: member.name)
        return Binding("QComboBoxToEnumConnector", tuple(label(member) for member in bare))
    if bare is str and widget_class in ("QLineEdit", "QLabel", "QTextEdit"):
        return Binding(f"{widget_class}ToStrConnector")
    if widget_class == "qMRMLNodeComboBox" and is_mrml_node_type(bare):
        return Binding("qMRMLNodeComboBoxToNodeConnector")
    raise RuntimeError(f"Unable to create GUI connector from datatype '{datatype}' to widget type '{widget_class}'.")


def check_panel_bindings(ui_path: Path, hints: dict[str, typing.Any]) -> dict[str, Binding]:
    """The binding of every ``SlicerParameterName`` widget of a panel, as Slicer builds them all at once;
    raises ``RuntimeError`` for the first that Slicer would refuse (which leaves the whole panel unbound)."""
    bindings = {}
    for widget in bound_widgets(ui_path):
        if widget.parameter not in hints:
            raise RuntimeError(f"{widget.name}: parameter '{widget.parameter}' is not a field of the parameter node")
        try:
            bindings[widget.parameter] = connector_for(widget.widget_class, hints[widget.parameter])
        except RuntimeError as error:
            raise RuntimeError(f"{widget.name} ({widget.widget_class}) -> {widget.parameter}: {error}") from None
    return bindings
