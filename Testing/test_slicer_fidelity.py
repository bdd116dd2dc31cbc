"""The module files against how the real 3D Slicer behaves, where slicer-core cannot show it.

Each test names the Slicer (v5.10.0 unless said otherwise), CTK or SlicerPyTorch source it encodes.
The panels are opened through ``Testing/slicer_app_double.py`` over a real slicer-core MRML scene.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import typing
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

REPO = Path(__file__).resolve().parent.parent
TESTING = REPO / "Testing"
MODULES = ["MRItoCT", "SliceInterp"]
sys.path.insert(0, str(TESTING))

import slicer_app_double  # noqa: E402
from slicer_gui_rules import INT_MIN, bound_widgets, check_panel_bindings, connector_for  # noqa: E402


def parameter_hints(widget) -> dict[str, typing.Any]:
    return widget._parameterNode.allParameters


def test_connector_rules_reject_what_slicer_rejects():
    """guiConnectors.py: QComboBoxToStringableConnector.create raises without Choice; an unbounded int on a
    QSpinBox gets the minimum -2**31; an unbounded float on a ctkSliderWidget raises; QComboBox + Choice
    refills the box with str(choice)."""
    from typing import Annotated

    Choice, WithinRange = slicer_app_double.Choice, slicer_app_double.WithinRange
    with pytest.raises(RuntimeError, match="requires the Choice annotation"):
        connector_for("QComboBox", str)
    assert connector_for("QSpinBox", int).minimum == INT_MIN
    with pytest.raises(RuntimeError, match="unbounded"):
        connector_for("ctkSliderWidget", float)
    assert connector_for("QComboBox", Annotated[str, Choice(["a", "b"])]).items == ("a", "b")
    assert connector_for("QSpinBox", Annotated[int, WithinRange(0, 9)]).minimum == 0
    with pytest.raises(RuntimeError, match="Unable to create GUI connector"):
        connector_for("QLabel", int)


@pytest.mark.parametrize("module", MODULES)
def test_every_bound_widget_gets_a_connector_slicer_accepts(panel, module):
    """wrapper.py _connectParametersToGui builds every connector of a panel at once: one refusal leaves the
    whole panel unbound. Each SlicerParameterName in the .ui must name a field whose annotation the
    declared widget class accepts (guiConnectors.py canRepresent/create, matched on type(widget))."""
    _, widget, shown = panel(module)
    ui_path = REPO / module / "Resources" / "UI" / f"{module}.ui"
    bindings = check_panel_bindings(ui_path, parameter_hints(widget))
    assert "inputVolume" in bindings and not shown["errors"]
    for parameter, binding in bindings.items():
        assert binding.minimum != INT_MIN, f"{parameter}: unbounded int, the spin box would start at -2**31"


@pytest.mark.parametrize("module", MODULES)
def test_combo_boxes_filled_by_slicer_are_not_filled_by_hand(module):
    """QComboBoxToStringableConnector.__init__ clears the box and adds str(choice) itself, so items added by
    the module's code to a bound combo box would be thrown away (and hand-added item data lost)."""
    source = (REPO / module / f"{module}.py").read_text(encoding="utf-8")
    for widget in bound_widgets(REPO / module / "Resources" / "UI" / f"{module}.ui"):
        if widget.widget_class in ("QComboBox", "ctkComboBox"):
            assert not re.search(rf"self\.ui\.{widget.name}\.addItem", source), f"{widget.name} is filled by hand"


def test_a_plain_str_on_a_combo_box_would_have_failed(panel, tmp_path):
    """The binding check is not vacuous: the previous MRItoCT binding (model: str on a QComboBox) is refused."""
    ui = (REPO / "MRItoCT" / "Resources" / "UI" / "MRItoCT.ui").read_text(encoding="utf-8")
    old_ui = tmp_path / "old.ui"
    old_ui.write_text(ui.replace('<widget class="QComboBox" name="modelComboBox">',
                                 '<widget class="QComboBox" name="modelComboBox"><property name="SlicerParameterName" '
                                 'stdset="0"><string>model</string></property>'), encoding="utf-8")
    _, widget, _ = panel("MRItoCT")
    with pytest.raises(RuntimeError, match="modelComboBox.*Choice"):
        check_panel_bindings(old_ui, parameter_hints(widget) | {"model": str})


@pytest.mark.parametrize("module", MODULES)
def test_panel_opens_without_torch_and_imports_nothing_heavy(module):
    """qSlicerScriptedLoadableModuleWidget.cxx only logs an exception raised in setup(), so the rest of the
    panel (the Apply connection, hence the install-on-first-use flow) would silently never connect. The panel
    must open with torch and MONAI unimportable, and must not try to import them."""
    completed = subprocess.run([sys.executable, str(TESTING / "slicer_app_double.py"), "open-panel", module],
                               capture_output=True, text=True, timeout=300, cwd=REPO)
    assert completed.returncode == 0, completed.stderr[-2000:]
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert report["error"] is None, report["error"]
    assert report["import_attempts"] == [] and report["heavy_loaded"] == [], report
    assert report["apply_connected"] and "inputVolume" in report["bound"]
    if module == "MRItoCT":
        assert "PyTorch is not installed yet" in report["device_text"]


def test_device_description_creates_no_cuda_context(monkeypatch):
    """device.py describe_device_request reads the PyTorch build from its files: no torch import, so no CUDA
    context (hundreds of MB of GPU memory) held by Slicer's GUI process just to fill a label."""
    from CTSynthesisCore import device

    blocker = slicer_app_double.BlockedImports(("torch",))
    monkeypatch.setattr(sys, "meta_path", [blocker, *sys.meta_path])
    for name in [n for n in sys.modules if n == "torch" or n.startswith("torch.")]:
        monkeypatch.delitem(sys.modules, name)
    for requested in ("auto", "cuda", "cpu"):
        assert device.describe_device_request(requested)
    assert blocker.attempts == []


def test_torch_build_is_read_without_importing_it():
    from CTSynthesisCore.device import installed_torch_build

    import torch

    version, cuda = installed_torch_build()
    assert version == torch.__version__ and cuda == torch.version.cuda


@pytest.mark.parametrize("module", MODULES)
def test_enter_exit_and_cleanup_work_even_if_setup_never_ran(panel, module):
    """Slicer's scripted-module template (Utilities/Templates/Modules/Scripted/TemplateKey.py) sets
    _parameterNode and _parameterNodeGuiTag in __init__, so enter()/exit()/cleanup() after a failed setup()
    do not raise AttributeError."""
    loaded, _, _ = panel(module)
    widget = getattr(loaded, f"{module}Widget")(slicer_app_double.module_panel(module))
    assert widget._parameterNode is None and widget._parameterNodeGuiTag is None
    widget.enter()
    widget.exit()
    widget.cleanup()


@pytest.mark.parametrize("module", MODULES)
def test_a_widget_without_parent_keeps_what_setup_built(panel, module):
    """ScriptedLoadableModule.py: ScriptedLoadableModuleWidget.__init__ without a parent runs setup() itself;
    attributes assigned after it in the subclass would wipe the logic and the parameter node."""
    loaded, _, _ = panel(module)
    widget = getattr(loaded, f"{module}Widget")()
    try:
        assert widget.logic is not None and widget._parameterNode is not None
    finally:
        widget.removeObservers()


def test_hand_synced_combo_boxes_follow_later_parameter_changes(panel):
    """wrapper.py connectGui keeps only SlicerParameterName widgets in sync; the model and sampler combo boxes
    must follow a parameter node changed later (scene import, console), or the panel and the run disagree."""
    _, widget, _ = panel("MRItoCT")
    widget._parameterNode.sampler = "ode"
    assert widget.ui.samplerComboBox.currentText == "Probability-flow ODE"
    other = next(name for name in widget.models if name != widget._parameterNode.model)
    widget._parameterNode.model = other
    assert widget.ui.modelComboBox.currentText == other


class RecordingJob:
    """A job that runs until cancelled and records the calls the panel makes."""

    def __init__(self) -> None:
        self.cancelled, self.running = False, True

    def start(self):
        return self

    def cancel(self) -> None:
        self.cancelled, self.running = True, False

    def poll(self):
        return None


@pytest.mark.parametrize("module", MODULES)
def test_cleanup_stops_the_poll_timer_and_drops_the_job(panel, module):
    """ScriptedLoadableModuleWidget.cleanup runs at moduleAboutToBeUnloaded (application exit): a timer left
    running would keep writing to destroyed widgets."""
    _, widget, _ = panel(module)
    job = RecordingJob()
    widget.startJob(job)
    timer = widget._timer
    assert timer.isActive() and widget.ui.applyButton.text == "Cancel"
    widget.cleanup()
    assert job.cancelled and not timer.isActive() and widget._job is None and widget._timer is None
    widget.onJobPoll()  # a late tick does nothing


@pytest.mark.parametrize("module", MODULES)
def test_an_older_slicer_is_refused_with_one_message(panel, module):
    """Slicer 5.8 bundles Python 3.9 (CMakeLists.txt Slicer_REQUIRED_PYTHON_VERSION "3.9.10" at v5.8.1), on which
    MONAI 1.6 and torch 2.8 do not install; qSlicerCoreApplication.h exposes majorVersion/minorVersion."""
    from CTSynthesisCore.slicer.dependencies import MINIMUM_SLICER_VERSION, ensure_requirements_in_slicer

    _, widget, shown = panel(module, 5, 8)
    needed = ".".join(map(str, MINIMUM_SLICER_VERSION))
    assert needed in widget.ui.statusLabel.text and widget.ui.applyButton.enabled is False
    assert ensure_requirements_in_slicer() is False
    assert len(shown["errors"]) == 1 and needed in shown["errors"][0] and not shown["questions"]


def test_minimum_slicer_version_is_declared_in_cmake_and_readme():
    from CTSynthesisCore.slicer.dependencies import MINIMUM_SLICER_VERSION, slicer_version_problem

    needed = ".".join(map(str, MINIMUM_SLICER_VERSION))
    cmake = (REPO / "CMakeLists.txt").read_text(encoding="utf-8")
    assert f"find_package(Slicer {needed} REQUIRED)" in cmake  # checked by Slicer's SlicerConfigVersion.cmake
    assert f"Requires 3D Slicer {needed} or newer" in cmake
    # The CMake range of Slicer 5.10's own extension template (Utilities/Templates/Extensions/Default/
    # CMakeLists.txt at v5.10.0): Slicer 5.10 itself needs CMake 3.20.6 or newer.
    assert cmake.startswith("cmake_minimum_required(VERSION 3.20.6...3.22.6 FATAL_ERROR)")
    assert f"3D Slicer {needed}" in (REPO / "README.md").read_text(encoding="utf-8")
    assert slicer_version_problem(5, 8) and slicer_version_problem(4, 11)
    assert slicer_version_problem(*MINIMUM_SLICER_VERSION) is None and slicer_version_problem(6, 0) is None


def test_torch_is_installed_with_a_version_requirement_and_an_old_one_is_upgraded(monkeypatch):
    """SlicerPyTorch PyTorchUtils.py installTorch(askConfirmation, forceComputationBackend,
    torchVersionRequirement, ...): without a requirement it installs whatever light-the-torch picks; an
    already installed torch is never checked by it (SlicerMONAIAuto3DSeg's dependency_handler compares
    the version itself)."""
    from CTSynthesisCore.slicer import dependencies

    versions = {"torch": "2.1.0+cu118", "monai": "1.3.0", "einops": "0.8.0", "SimpleITK": "2.4.0", "tqdm": "4.66"}
    monkeypatch.setattr(dependencies, "installed_version", lambda r: versions.get(r.distribution))
    torch_requests, pip_requests = [], []

    def install_torch(requirement: str) -> bool:
        torch_requests.append(requirement)
        versions["torch"] = "2.8.0+cu126"
        return True

    def pip_install(specifier: str) -> None:
        pip_requests.append(specifier)
        versions["monai"] = "1.6.1"

    questions = []
    ready, message = dependencies.ensure_requirements(lambda q: questions.append(q) or True, install_torch, pip_install)
    assert ready, message
    assert torch_requests == [">=2.8"] and pip_requests == ["monai>=1.6.1"]
    assert "torch>=2.8 (installed: 2.1.0+cu118)" in questions[0] and "monai>=1.6.1 (installed: 1.3.0)" in questions[0]


def test_a_missing_pytorch_extension_gives_one_dialog(panel, monkeypatch):
    """SlicerMONAIAuto3DSeg's dependency_handler: without the PyTorch extension, say to install it; one dialog."""
    import slicer

    from CTSynthesisCore.slicer import dependencies

    _, _, shown = panel("MRItoCT")
    monkeypatch.setattr(dependencies, "installed_version", lambda r: None if r.module == "torch" else "9.9")
    monkeypatch.setattr(slicer.util, "confirmOkCancelDisplay", lambda text, *a, **k: True)
    monkeypatch.setitem(sys.modules, "PyTorchUtils", None)  # the extension is not installed
    assert dependencies.ensure_requirements_in_slicer() is False
    assert len(shown["errors"]) == 1 and "'PyTorch' extension" in shown["errors"][0]


def test_versions_compare_by_release_numbers():
    from CTSynthesisCore.slicer.dependencies import Requirement, is_satisfied, version_key

    assert version_key("2.10.0+cu126") == (2, 10, 0) > version_key("2.8") and version_key("1.6.1rc1") == (1, 6, 1)
    torch = Requirement("torch", "torch", "2.8")
    assert is_satisfied(torch, "2.13.0+cpu") and not is_satisfied(torch, "2.7.1") and not is_satisfied(torch, None)
    assert is_satisfied(Requirement("SimpleITK", "SimpleITK"), "")  # importable, no metadata (Slicer's own build)


def cmake_list(text: str, variable: str) -> list[str]:
    match = re.search(rf"set\({variable}\s+(.*?)\)", text, re.DOTALL)
    assert match, f"{variable} is not set"
    return match.group(1).split()


def test_every_file_looked_up_at_run_time_is_in_the_build_and_install_trees():
    """CTK ctkMacroCompilePythonScript.cmake copies SCRIPTS and RESOURCES (SOURCE_DIR/file ->
    DESTINATION_DIR/file) into the build tree, where slicer_add_python_unittest runs the self-tests, and
    installs DESTINATION_DIR as a whole; files placed only by install(DIRECTORY) are missing from the build
    tree. So every file the code finds relative to CTSynthesisCore/ or a module's Resources/ is listed."""
    from CTSynthesisCore.sample_data import SAMPLES
    from CTSynthesisCore.weights import list_models

    core = (REPO / "CTSynthesisCore" / "CMakeLists.txt").read_text(encoding="utf-8")
    assert "install(DIRECTORY" not in core
    resources = set(cmake_list(core, "CORE_RUNTIME_RESOURCES"))
    assert 'RESOURCES "${CORE_RUNTIME_RESOURCES}"' in core and "SOURCE_DIR ${CMAKE_CURRENT_SOURCE_DIR}/.." in core
    needed = set()
    for sample in SAMPLES.values():
        needed.add(f"Resources/SampleData/{sample.file_name}")
        thumbnail = REPO / "Resources" / "SampleData" / f"{sample.name}.png"  # optional (sample_data_source)
        if thumbnail.is_file():
            needed.add(thumbnail.relative_to(REPO).as_posix())
    for model in list_models():
        folder = Path(model["folder"]).relative_to(REPO).as_posix()
        needed |= {f"{folder}/metadata.json", f"{folder}/{model['weights_file']}"}
    assert needed and needed <= resources, f"not copied to the build tree: {sorted(needed - resources)}"
    shipped = {p.relative_to(REPO).as_posix() for d in ("model_weights", "Resources/SampleData")
               for p in (REPO / d).rglob("*") if p.is_file()}
    assert resources == shipped, f"stale or missing: {sorted(resources ^ shipped)}"
    for module in MODULES:
        source = (REPO / module / f"{module}.py").read_text(encoding="utf-8")
        module_resources = cmake_list((REPO / module / "CMakeLists.txt").read_text(encoding="utf-8")
                                      .replace("${MODULE_NAME}", module), "MODULE_PYTHON_RESOURCES")
        for looked_up in re.findall(r'resourcePath\("([^"]+)"\)', source):
            assert f"Resources/{looked_up}" in module_resources


def test_extension_screenshots_exist():
    cmake = (REPO / "CMakeLists.txt").read_text(encoding="utf-8")
    urls = re.search(r'set\(EXTENSION_SCREENSHOTURLS "([^"]+)"\)', cmake).group(1).split()
    assert urls
    for url in urls:
        path = REPO / url.split("/main/", 1)[1]
        assert path.is_file() and path.stat().st_size > 10_000, f"screenshot {path} missing"


def test_collections_from_the_scene_are_released(mrml_scene):
    """vtkMRMLScene.h: GetNodesByClassByName "You are responsible for deleting the collection"; Slicer's
    util.getNodesByClass calls UnRegister. A collection left with two references is leaked."""
    from CTSynthesisCore.slicer.display import nodes_of_class, set_foreground_opacity

    handed_out = []

    class RecordingScene:
        def __getattr__(self, name):
            method = getattr(mrml_scene, name)
            if not name.startswith("GetNodesByClass"):
                return method

            def recorded(*arguments):
                collection = method(*arguments)
                handed_out.append(collection)
                return collection
            return recorded

    mrml_scene.AddNewNodeByClass("vtkMRMLSliceCompositeNode")
    set_foreground_opacity(RecordingScene(), 0.3)
    nodes_of_class(RecordingScene(), "vtkMRMLColorNode", "Inferno")
    assert len(handed_out) == 2 and all(c.GetReferenceCount() == 1 for c in handed_out)


def transformed_ct(scene):
    """A small CT volume node under a linear transform (a 30 mm shift)."""
    from CTSynthesisCore.slicer.mrml import update_volume_node_from_image

    image = sitk.GetImageFromArray(np.linspace(-500, 500, 6 * 16 * 16, dtype=np.float32).reshape(6, 16, 16))
    image.SetSpacing((1.0, 1.0, 4.0))
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "ct")
    update_volume_node_from_image(node, image)
    transform = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "shift")
    matrix = transform.GetMatrixTransformToParent()
    matrix.SetElement(0, 3, 30.0)
    transform.SetMatrixTransformToParent(matrix)
    node.SetAndObserveTransformNodeID(transform.GetID())
    return node, transform


def test_outputs_go_under_the_input_transform(mrml_scene):
    """vtkMRMLVolumeNode::GetIJKToRASMatrix is the node's local frame; outputs computed in it are aligned with
    the input only under the same parent transform (in this process and through the background job)."""
    from SliceInterpLib.slicer.nodes import UpsampleJob, upsample_nodes
    from SliceInterpLib.settings import UpsampleSettings

    node, transform = transformed_ct(mrml_scene)
    output = mrml_scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "out")
    upsample_nodes(node, output, factor=2, settings=UpsampleSettings(method="linear"))
    assert output.GetTransformNodeID() == transform.GetID()
    job = UpsampleJob(node, None, factor=2, settings=UpsampleSettings(method="linear")).start()
    job.wait()
    outcome = job.finish()
    assert outcome.output_node.GetTransformNodeID() == transform.GetID()
    node.SetAndObserveTransformNodeID(None)
    upsample_nodes(node, output, factor=2, settings=UpsampleSettings(method="linear"))
    assert output.GetTransformNodeID() is None


def test_synthetic_ct_goes_under_the_input_transform(mrml_scene, tiny_model):
    from MRItoCTLib.slicer.nodes import synthesize_nodes
    from MRItoCTLib.settings import SynthesisSettings

    node, transform = transformed_ct(mrml_scene)
    ct = mrml_scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "sct")
    std = mrml_scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "std")
    synthesize_nodes(node, ct, std, SynthesisSettings(sampler="ddim", steps=2, mc=2).validated(), model=str(tiny_model))
    assert ct.GetTransformNodeID() == std.GetTransformNodeID() == transform.GetID()


JOB_WITHOUT_TORCH = """
import json, sys
sys.path.insert(0, sys.argv[1])
import numpy as np, SimpleITK as sitk, slicer
from slicer_app_double import BlockedImports
blocker = BlockedImports()
sys.meta_path.insert(0, blocker)
from CTSynthesisCore.slicer.mrml import update_volume_node_from_image
from MRItoCTLib.settings import SynthesisSettings
from MRItoCTLib.slicer.nodes import SynthesisJob
from SliceInterpLib.settings import UpsampleSettings
from SliceInterpLib.slicer.nodes import UpsampleJob
scene = slicer.vtkMRMLScene()
node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "input")
update_volume_node_from_image(node, sitk.GetImageFromArray(np.zeros((4, 8, 8), np.float32)))
jobs = [SynthesisJob(node, None, None, SynthesisSettings(sampler="ode")),
        UpsampleJob(node, None, factor=2, settings=UpsampleSettings(), disagreement=True)]
written = [(job.folder / "job.json").is_file() for job in jobs]
for job in jobs:
    job.cleanup()
print(json.dumps({"written": written, "attempts": blocker.attempts,
                  "loaded": sorted(n for n in sys.modules if n.split(".")[0] in ("torch", "monai"))}))
"""


def test_apply_builds_the_background_jobs_without_torch():
    """The panel's Apply hands typed requests to the workers (CTSynthesisCore/jobs.py); building them imports no
    PyTorch into Slicer's process (the worker, a child process, does)."""
    completed = subprocess.run([sys.executable, "-c", JOB_WITHOUT_TORCH, str(TESTING)], capture_output=True,
                               text=True, timeout=300, cwd=REPO)
    assert completed.returncode == 0, completed.stderr[-2000:]
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert report == {"written": [True, True], "attempts": [], "loaded": []}
