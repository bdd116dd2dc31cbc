"""Each module's .ui loads offscreen (PySide6) and holds every widget its code looks up."""

import os
import re
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
MODULES = ["MRItoCT", "SliceInterp"]


@pytest.fixture(scope="module")
def qt_app():
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    widgets = pytest.importorskip("PySide6.QtWidgets")
    app = widgets.QApplication.instance() or widgets.QApplication([])
    yield app


def load_ui(path: Path):
    from PySide6.QtCore import QFile
    from PySide6.QtUiTools import QUiLoader

    handle = QFile(str(path))
    assert handle.open(QFile.ReadOnly), f"cannot open {path}"
    loader = QUiLoader()
    widget = loader.load(handle)
    handle.close()
    assert widget is not None, loader.errorString()
    return widget


def names_used_by_code(module: str) -> set[str]:
    """Widgets the module's own code and the shared widget mixins (CTSynthesisCore.slicer.panel) look up."""
    source = (REPO / module / f"{module}.py").read_text(encoding="utf-8")
    mixins = (REPO / "CTSynthesisCore" / "slicer" / "panel.py").read_text(encoding="utf-8")
    return set(re.findall(r"self\.ui\.(\w+)", source + mixins))


INTERACTIVE = ("QComboBox", "QSpinBox", "QDoubleSpinBox", "QCheckBox", "QPushButton", "qMRMLNodeComboBox",
               "ctkSliderWidget", "QProgressBar")


def ui_widgets(module: str, property_name: str) -> dict[str, str]:
    """Widget name -> the text of one of its properties, for every widget of the module's .ui that has it."""
    root = ElementTree.parse(REPO / module / "Resources" / "UI" / f"{module}.ui").getroot()
    found = {}
    for widget in root.iter("widget"):
        value = widget.find(f"property[@name='{property_name}']/string")
        if value is not None:
            found[widget.get("name")] = value.text or ""
    return found


@pytest.mark.parametrize("module", MODULES)
def test_every_control_has_a_tooltip(module):
    root = ElementTree.parse(REPO / module / "Resources" / "UI" / f"{module}.ui").getroot()
    controls = {w.get("name") for w in root.iter("widget") if w.get("class") in INTERACTIVE}
    tips = {name for name, text in ui_widgets(module, "toolTip").items() if len(text) > 10}
    assert controls and not controls - tips, f"controls without a tooltip: {sorted(controls - tips)}"


@pytest.mark.parametrize("module", MODULES)
def test_ui_holds_every_widget_the_code_uses(qt_app, module, screenshot_dir):
    from PySide6.QtWidgets import QWidget

    widget = load_ui(REPO / module / "Resources" / "UI" / f"{module}.ui")
    names = {child.objectName() for child in widget.findChildren(QWidget)}
    used = names_used_by_code(module)
    assert used, "the module code should look up widgets"
    missing = sorted(used - names)
    assert not missing, f"{module}.ui lacks widgets used by {module}.py: {missing}"
    if screenshot_dir is not None:
        widget.resize(400, 700)
        widget.show()
        qt_app.processEvents()
        assert widget.grab().save(str(screenshot_dir / f"{module}.png"))


@pytest.mark.parametrize("module", MODULES)
def test_parameter_names_in_ui_match_parameter_node(module):
    """Widgets bound with SlicerParameterName must name a field of the module's parameter node."""
    bound = set(ui_widgets(module, "SlicerParameterName").values())
    source = (REPO / module / f"{module}.py").read_text(encoding="utf-8")
    block = source.split(f"class {module}ParameterNode:")[1].split("\nclass ")[0]
    fields = set(re.findall(r"^    (\w+):", block, re.MULTILINE))
    assert bound and bound <= fields, f"unbound parameter names: {sorted(bound - fields)}"
