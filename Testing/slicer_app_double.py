"""A stand-in for the parts of the 3D Slicer application that the PyPI package slicer-core lacks: the
scripted-module base classes, ``parameterNodeWrapper``, PythonQt widgets loaded from a .ui file,
``slicer.app`` and the dialogs. Slicer itself cannot be installed here; this double lets a test import
a module file and open its panel over a real MRML scene (slicer-core), with the binding rules of
:mod:`slicer_gui_rules` applied as Slicer applies them.

Written from Slicer's source (v5.10.0): ``Base/Python/slicer/ScriptedLoadableModule.py`` (the base
classes, ``getParameterNode`` as a singleton ``vtkMRMLScriptedModuleNode``), ``util.py``
(``childWidgetVariables`` returns an object with one attribute per named child widget),
``parameterNodeWrapper/wrapper.py`` (``connectGui`` on a non-widget ``ui`` reads ``ui.__dict__``, builds
all connectors, then writes the parameter values into the widgets and follows their changes).

Run as a script, it opens a module's panel with PyTorch and MONAI made unimportable and prints a JSON
report (``python Testing/slicer_app_double.py open-panel MRItoCT``).
"""

from __future__ import annotations

import enum
import importlib.abc
import importlib.machinery
import importlib.util
import json
import sys
import types
import typing
import xml.etree.ElementTree as ElementTree
from pathlib import Path

TESTING = Path(__file__).resolve().parent
REPO = TESTING.parent
if str(TESTING) not in sys.path:
    sys.path.insert(0, str(TESTING))

from slicer_gui_rules import Binding, connector_for, split_annotation  # noqa: E402

HEAVY_MODULES = ("torch", "monai")


class BlockedImports(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Makes ``import torch`` / ``import monai`` fail as if they were not installed, and records each try."""

    def __init__(self, blocked: tuple[str, ...] = HEAVY_MODULES) -> None:
        self.blocked, self.attempts = blocked, []

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.blocked:
            return importlib.machinery.ModuleSpec(name, self)
        return None

    def create_module(self, spec):
        self.attempts.append(spec.name)
        raise ModuleNotFoundError(f"No module named '{spec.name}' (made unimportable by the test)")

    def exec_module(self, module):  # never reached: create_module raises
        raise ModuleNotFoundError(module.__name__)


# --- widgets -----------------------------------------------------------------------------------------

SIGNALS_ON_SET = {
    "currentIndex": ("currentIndexChanged", "currentTextChanged"),
    "checked": ("toggled", "stateChanged"),
    "value": ("valueChanged",),
    "collapsed": ("contentsCollapsed",),
}


class FakeWidget:
    """A widget as PythonQt shows it to Python: Qt properties as attributes, ``connect("signal(args)", slot)``,
    combo-box items, and a dynamic ``SlicerParameterName`` property. Its class is the one declared in the .ui."""

    def __init__(self, class_name: str, name: str, properties: dict[str, typing.Any] | None = None) -> None:
        state = {"className": class_name, "name": name, "props": dict(properties or {}), "slots": {},
                 "items": [], "children": [], "scene": None}
        object.__setattr__(self, "_state", state)
        self._state["props"].setdefault("enabled", True)
        if class_name in ("QComboBox", "ctkComboBox"):
            self._state["props"]["currentIndex"] = -1

    # Qt properties as attributes ------------------------------------------------------------------
    def __getattr__(self, attribute: str):
        props = object.__getattribute__(self, "_state")["props"]
        if attribute == "name":
            return self._state["name"]
        if attribute == "currentText":
            index = props.get("currentIndex", -1)
            return self._state["items"][index][0] if 0 <= index < len(self._state["items"]) else ""
        if attribute == "count":
            return len(self._state["items"])
        if attribute in props:
            return props[attribute]
        if attribute in ("text", "toolTip"):
            return ""
        raise AttributeError(f"{self._state['className']} '{self._state['name']}' has no attribute '{attribute}'")

    def __setattr__(self, attribute: str, value) -> None:
        props = self._state["props"]
        changed = props.get(attribute) != value
        props[attribute] = value
        if changed:
            for signal in SIGNALS_ON_SET.get(attribute, ()):
                argument = self.currentText if signal == "currentTextChanged" else value
                self.emit(signal, argument)

    def property(self, name: str):
        return self._state["props"].get(name)

    def className(self) -> str:
        return self._state["className"]

    # signals --------------------------------------------------------------------------------------
    def connect(self, signature: str, slot) -> None:
        self._state["slots"].setdefault(signature.split("(")[0], []).append(slot)

    def emit(self, signal: str, *arguments) -> None:
        for slot in list(self._state["slots"].get(signal, [])):
            slot(*arguments)

    # combo boxes ----------------------------------------------------------------------------------
    def addItem(self, text: str, data=None) -> None:
        self._state["items"].append((str(text), data))
        if self._state["props"].get("currentIndex", -1) < 0:
            self.currentIndex = 0

    def clear(self) -> None:
        self._state["items"].clear()
        self.currentIndex = -1

    def itemData(self, index: int):
        return self._state["items"][index][1] if 0 <= index < len(self._state["items"]) else None

    def findData(self, data) -> int:
        return next((i for i, (_, d) in enumerate(self._state["items"]) if d == data), -1)

    def findText(self, text: str) -> int:
        return next((i for i, (t, _) in enumerate(self._state["items"]) if t == text), -1)

    def setCurrentIndex(self, index: int) -> None:
        self.currentIndex = index

    # MRML widgets and layouts ---------------------------------------------------------------------
    def setMRMLScene(self, scene) -> None:
        self._state["scene"] = scene
        for child in self._state["children"]:
            if child.className() in ("qMRMLNodeComboBox",):
                child.setMRMLScene(scene)

    def currentNode(self):
        return self._state["props"].get("currentNode")

    def setCurrentNode(self, node) -> None:
        if self._state["props"].get("currentNode") is not node:
            self._state["props"]["currentNode"] = node
            self.emit("currentNodeChanged", node)

    def layout(self) -> FakeWidget:
        return self

    def addWidget(self, widget) -> None:
        self._state["children"].append(widget)

    def descendants(self) -> list[FakeWidget]:
        found = []
        for child in self._state["children"]:
            found += [child, *child.descendants()]
        return found


def property_value(element: ElementTree.Element):
    """The Python value of a .ui ``<property>`` element."""
    value = element[0]
    if value.tag in ("bool",):
        return value.text == "true"
    if value.tag == "number":
        return int(value.text)
    if value.tag == "double":
        return float(value.text)
    if value.tag == "stringlist":
        return [item.text for item in value]
    return value.text or ""


def widget_from_ui(element: ElementTree.Element) -> FakeWidget:
    """A widget tree from a .ui ``<widget>`` element (layouts are flattened)."""
    props = {p.get("name"): property_value(p) for p in element.findall("property") if len(p)}
    widget = FakeWidget(element.get("class"), element.get("name"), props)
    for child in element.iter("widget"):
        if child is not element and parent_widget(element, child) is element:
            widget.addWidget(widget_from_ui(child))
    return widget


def parent_widget(root: ElementTree.Element, target: ElementTree.Element):
    """The nearest ``<widget>`` ancestor of ``target`` below ``root``."""
    parents = {child: parent for parent in root.iter() for child in parent}
    node = parents.get(target)
    while node is not None and node.tag != "widget":
        node = parents.get(node)
    return node


def load_ui(path: str) -> FakeWidget:
    """``slicer.util.loadUI``: the .ui file's top widget."""
    return widget_from_ui(ElementTree.parse(path).getroot().find("widget"))


def child_widget_variables(widget: FakeWidget):
    """``slicer.util.childWidgetVariables``: an object with one attribute per named child widget."""
    ui = type("", (), {})()
    for child in widget.descendants():
        setattr(ui, child.name, child)
    return ui


# --- parameterNodeWrapper ---------------------------------------------------------------------------

class Validator:
    def validate(self, value) -> None:
        raise NotImplementedError


class WithinRange(Validator):
    def __init__(self, minimum, maximum) -> None:
        self.minimum, self.maximum = minimum, maximum

    def validate(self, value) -> None:
        if not self.minimum <= value <= self.maximum:
            raise ValueError(f"Value {value} is not within range [{self.minimum}, {self.maximum}]")


class Minimum(Validator):
    def __init__(self, minimum) -> None:
        self.minimum = minimum

    def validate(self, value) -> None:
        if value < self.minimum:
            raise ValueError(f"Value {value} is below {self.minimum}")


class Maximum(Validator):
    def __init__(self, maximum) -> None:
        self.maximum = maximum

    def validate(self, value) -> None:
        if value > self.maximum:
            raise ValueError(f"Value {value} is above {self.maximum}")


class Choice(Validator):
    def __init__(self, choices) -> None:
        self.choices = choices

    def validate(self, value) -> None:
        if value not in self.choices:
            raise ValueError(f"Value is {value}, but must be in one of the following: {self.choices}")


class Connector:
    """One widget bound to one parameter, behaving as the Slicer connector named by its :class:`Binding`."""

    def __init__(self, widget: FakeWidget, datatype, binding: Binding) -> None:
        self.widget, self.binding = widget, binding
        bare, annotations = split_annotation(datatype)
        choice = next((a for a in annotations if isinstance(a, Choice)), None)
        self.choices = list(choice.choices) if choice else (list(bare) if isinstance(bare, type) and
                                                              issubclass(bare, enum.Enum) else [])
        if binding.items:  # the stringable and enum connectors clear the combo box and refill it
            widget.clear()
            for item in binding.items:
                widget.addItem(item)
        if binding.minimum is not None:
            widget.minimum, widget.maximum = binding.minimum, binding.maximum

    @property
    def signal(self) -> str:
        return {"QCheckBoxToBoolConnector": "toggled", "qMRMLNodeComboBoxToNodeConnector": "currentNodeChanged",
                "QComboBoxToStringableConnector": "currentIndexChanged",
                "QComboBoxToEnumConnector": "currentIndexChanged"}.get(self.binding.connector, "valueChanged")

    def read(self):
        if self.choices:
            return self.choices[self.widget.currentIndex]
        if self.binding.connector == "qMRMLNodeComboBoxToNodeConnector":
            return self.widget.currentNode()
        if self.binding.connector == "QCheckBoxToBoolConnector":
            return bool(self.widget.checked)
        return self.widget.value

    def write(self, value) -> None:
        if self.choices:
            if value not in self.choices:
                raise ValueError(f"Unable to find value {value} in choices {self.choices}")
            self.widget.currentIndex = self.choices.index(value)
        elif self.binding.connector == "qMRMLNodeComboBoxToNodeConnector":
            self.widget.setCurrentNode(value)
        elif self.binding.connector == "QCheckBoxToBoolConnector":
            self.widget.checked = bool(value)
        else:
            self.widget.value = value


VALUES: dict[str, dict[str, typing.Any]] = {}  # parameter values per parameter node ID (shared by wrappers)


def parameterNodeWrapper(cls):
    """A typed view of a ``vtkMRMLScriptedModuleNode`` with validated fields and ``connectGui``."""
    hints = typing.get_type_hints(cls, include_extras=True)
    defaults = {name: getattr(cls, name, None) for name in hints}

    class Wrapper:
        allParameters = hints

        def __init__(self, node) -> None:
            object.__setattr__(self, "parameterNode", node)
            object.__setattr__(self, "_guis", {})
            VALUES.setdefault(node.GetID(), dict(defaults))

        def __getattr__(self, name: str):
            if name in hints:
                return VALUES[self.parameterNode.GetID()][name]
            raise AttributeError(name)

        def __setattr__(self, name: str, value) -> None:
            if name not in hints:
                raise AttributeError(f"{cls.__name__} has no parameter '{name}'")
            for validator in split_annotation(hints[name])[1]:
                if isinstance(validator, Validator):
                    validator.validate(value)
            VALUES[self.parameterNode.GetID()][name] = value
            for connectors in self._guis.values():  # the ModifiedEvent observer of wrapper.py
                if name in connectors and connectors[name].read() != value:
                    connectors[name].write(value)
            self.parameterNode.Modified()  # writing a parameter modifies the node (wrapper.py _Parameter.write)

        def __bool__(self) -> bool:
            return True

        def dataType(self, name: str):
            return hints[name]

        def connectGui(self, ui) -> int:
            widgets = {w.property("SlicerParameterName"): w for w in vars(ui).values()
                       if isinstance(w, FakeWidget) and w.property("SlicerParameterName")}
            for name in widgets:
                if name not in hints:
                    raise ValueError(f"Parameter '{name}' does not exist in {cls.__name__}")
            connectors = {name: Connector(widget, hints[name], connector_for(widget.className(), hints[name]))
                          for name, widget in widgets.items()}
            tag = len(self._guis) + 1 + max(self._guis, default=0)
            self._guis[tag] = connectors
            for name, connector in connectors.items():
                connector.write(getattr(self, name))
                connector.widget.connect(connector.signal, self._gui_to_parameter(name, connector))
            return tag

        def _gui_to_parameter(self, name: str, connector: Connector):
            def update(*_arguments) -> None:
                value = connector.read()
                if VALUES[self.parameterNode.GetID()][name] != value:
                    setattr(self, name, value)
            return update

        def disconnectGui(self, tag) -> None:
            for connector in self._guis.pop(tag, {}).values():
                connector.widget._state["slots"].pop(connector.signal, None)

    Wrapper.__name__ = Wrapper.__qualname__ = cls.__name__
    return Wrapper


# --- scripted-module base classes -------------------------------------------------------------------

class ScriptedLoadableModule:
    def __init__(self, parent) -> None:
        self.parent = parent
        self.moduleName = self.__class__.__name__


class ScriptedLoadableModuleWidget:
    def __init__(self, parent=None) -> None:
        import slicer

        super().__init__()  # reaches VTKObservationMixin.__init__ in the module widgets' base order
        self.moduleName = self.__class__.__name__.removesuffix("Widget")
        self.parent = parent if parent is not None else FakeWidget("qMRMLWidget", self.moduleName)
        self.parent.isEntered = False
        self.layout = self.parent.layout()
        self.developerMode = False
        if parent is None:  # a top-level widget: Slicer builds it at once
            self.setup()
        slicer.app.connections.append(("moduleAboutToBeUnloaded(QString)", self))

    def resourcePath(self, filename: str) -> str:
        return str(Path(sys.modules[self.__class__.__module__].__file__).parent / "Resources" / filename)

    def setup(self) -> None:
        pass

    def cleanup(self) -> None:
        pass


class ScriptedLoadableModuleLogic:
    def __init__(self, parent=None) -> None:
        self.moduleName = self.__class__.__name__.removesuffix("Logic")

    def getParameterNode(self):
        import slicer

        node = slicer.mrmlScene.GetSingletonNode(self.moduleName, "vtkMRMLScriptedModuleNode")
        if node is None:
            node = slicer.vtkMRMLScriptedModuleNode()
            node.SetSingletonTag(self.moduleName)
            node.SetAttribute("ModuleName", self.moduleName)
            node = slicer.mrmlScene.AddNode(node)
        return node


class ScriptedLoadableModuleTest:
    def delayDisplay(self, message: str, msec: int = 1000) -> None:
        pass


class FakeTimer:
    """``qt.QTimer``: records its interval, state and ``timeout()`` slots; a test calls :meth:`fire`."""

    instances: list[FakeTimer] = []

    def __init__(self) -> None:
        self.interval, self.active, self.slots = 0, False, []
        FakeTimer.instances.append(self)

    def setInterval(self, msec: int) -> None:
        self.interval = msec

    def connect(self, signature: str, slot) -> None:
        self.slots.append(slot)

    def start(self) -> None:
        self.active = True

    def stop(self) -> None:
        self.active = False

    def isActive(self) -> bool:
        return self.active

    def fire(self) -> None:
        for slot in list(self.slots):
            slot()


class FakeApp:
    """``slicer.app``: its version, and the signal connections made to it."""

    def __init__(self, major: int = 5, minor: int = 10) -> None:
        self.majorVersion, self.minorVersion, self.connections = major, minor, []

    def connect(self, signature: str, slot) -> None:
        self.connections.append((signature, slot))

    def layoutManager(self):
        """None, as qSlicerApplication::layoutManager() gives when Slicer runs without its main window."""
        return None


def install(scene, major: int = 5, minor: int = 10, monkeypatch=None) -> dict[str, list]:
    """Put the double into ``sys.modules`` over slicer-core and return the record of dialogs shown; with
    pytest's ``monkeypatch`` everything is restored after the test."""
    import slicer
    import slicer.util

    setattr_ = monkeypatch.setattr if monkeypatch else setattr
    setitem = monkeypatch.setitem if monkeypatch else (lambda mapping, key, value: mapping.__setitem__(key, value))
    shown = {"errors": [], "questions": [], "warnings": []}
    wrapper_module = types.ModuleType("slicer.parameterNodeWrapper")
    for name in ("parameterNodeWrapper", "WithinRange", "Choice", "Minimum", "Maximum", "Validator"):
        setattr(wrapper_module, name, globals()[name])
    module_base = types.ModuleType("slicer.ScriptedLoadableModule")
    for name in ("ScriptedLoadableModule", "ScriptedLoadableModuleWidget", "ScriptedLoadableModuleLogic",
                 "ScriptedLoadableModuleTest"):
        setattr(module_base, name, globals()[name])
    qt = types.ModuleType("qt")
    qt.QTimer = FakeTimer
    for name, module in {"slicer.parameterNodeWrapper": wrapper_module, "slicer.ScriptedLoadableModule": module_base,
                         "qt": qt, "ctk": types.ModuleType("ctk")}.items():
        setitem(sys.modules, name, module)
    for target, name, value in (
            (slicer, "parameterNodeWrapper", wrapper_module), (slicer, "ScriptedLoadableModule", module_base),
            (slicer, "app", FakeApp(major, minor)), (slicer, "mrmlScene", scene),
            (slicer.util, "loadUI", load_ui), (slicer.util, "childWidgetVariables", child_widget_variables),
            (slicer.util, "errorDisplay", lambda text, *a, **k: shown["errors"].append(text)),
            (slicer.util, "warningDisplay", lambda text, *a, **k: shown["warnings"].append(text)),
            (slicer.util, "confirmOkCancelDisplay", lambda text, *a, **k: shown["questions"].append(text) or False),
            (slicer.util, "resetSliceViews", lambda: None),
            (slicer.util, "tryWithErrorDisplay", try_with_error_display(shown))):
        setattr_(target, name, value, raising=False) if monkeypatch else setattr_(target, name, value)
    return shown


def try_with_error_display(shown: dict):
    """``slicer.util.tryWithErrorDisplay``: an exception inside becomes an error dialog."""
    import contextlib

    @contextlib.contextmanager
    def context(message=None, show=True, waitCursor=False):
        try:
            yield
        except Exception as error:  # noqa: BLE001 - what Slicer's helper does
            shown["errors"].append(f"{message}\n{error}" if message else str(error))
    return context


def import_module_file(module: str, monkeypatch=None):
    """Import ``<module>/<module>.py`` afresh as Slicer does (the module folder on ``sys.path``)."""
    folder = REPO / module
    for path in (str(folder), str(REPO)):
        if path not in sys.path:
            sys.path.insert(0, path)
    spec = importlib.util.spec_from_file_location(module, folder / f"{module}.py")
    loaded = importlib.util.module_from_spec(spec)
    if monkeypatch:
        monkeypatch.setitem(sys.modules, module, loaded)
    else:
        sys.modules[module] = loaded
    spec.loader.exec_module(loaded)
    return loaded


def module_panel(module: str) -> FakeWidget:
    """The parent Slicer gives a module widget (qSlicerScriptedLoadableModuleWidget)."""
    return FakeWidget("qSlicerScriptedLoadableModuleWidget", module)


def open_panel(module: str, major: int = 5, minor: int = 10, monkeypatch=None, scene=None):
    """Import a module file and open its panel as Slicer does (module, widget ``setup()``, ``enter()``)
    over a scene (a new one by default); returns (module object, widget, record of dialogs)."""
    import slicer

    shown = install(scene or slicer.vtkMRMLScene(), major, minor, monkeypatch)
    loaded = import_module_file(module, monkeypatch)
    getattr(loaded, module)(types.SimpleNamespace())
    widget = getattr(loaded, f"{module}Widget")(module_panel(module))
    widget.setup()
    widget.enter()
    return loaded, widget, shown


def open_panel_report(module: str) -> dict:
    """Open a panel with torch and MONAI unimportable; what it imported, bound and showed."""
    blocker = BlockedImports()
    sys.meta_path.insert(0, blocker)
    report = {"error": None}
    try:
        _, widget, shown = open_panel(module)
        report.update(shown)
        report["bound"] = sorted(name for tag in widget._parameterNode._guis.values() for name in tag)
        report["status"] = widget.ui.statusLabel.text
        report["apply_connected"] = bool(widget.ui.applyButton._state["slots"].get("clicked"))
        report["device_text"] = getattr(widget.ui, "deviceLabel", None) and widget.ui.deviceLabel.text
    except Exception as error:  # noqa: BLE001 - reported to the test
        report["error"] = f"{type(error).__name__}: {error}"
    report["import_attempts"] = blocker.attempts
    report["heavy_loaded"] = sorted(name for name in sys.modules if name.split(".")[0] in HEAVY_MODULES
                                    and sys.modules[name] is not None)
    return report


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "open-panel":
        raise SystemExit("usage: slicer_app_double.py open-panel MODULE")
    print(json.dumps(open_panel_report(sys.argv[2])))
