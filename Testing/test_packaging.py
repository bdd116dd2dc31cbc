"""The Slicer extension metadata and module CMake files agree with the files on disk."""

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
MODULES = ["MRItoCT", "SliceInterp"]


def cmake_list(text: str, variable: str) -> list[str]:
    match = re.search(rf"set\({variable}\s+(.*?)\)", text, re.DOTALL)
    assert match, f"{variable} is not set"
    return [item for item in match.group(1).split() if not item.startswith("#")]


def test_top_level_layout_exists():
    for name in ["CMakeLists.txt", "MRItoCT", "SliceInterp", "Resources", "Testing", "model_weights", "README.md",
                 "pyproject.toml", ".ci/run", "LICENSE"]:
        assert (REPO / name).exists(), f"{name} is missing"
    assert "Apache License" in (REPO / "LICENSE").read_text(encoding="utf-8")


def test_extension_cmake_declares_metadata_and_modules():
    text = (REPO / "CMakeLists.txt").read_text(encoding="utf-8")
    assert re.search(r"^project\(CTSynthesis\)", text, re.MULTILINE)
    for variable in ["EXTENSION_HOMEPAGE", "EXTENSION_CATEGORY", "EXTENSION_CONTRIBUTORS", "EXTENSION_DESCRIPTION",
                     "EXTENSION_ICONURL", "EXTENSION_SCREENSHOTURLS"]:
        assert re.search(rf'set\({variable} "[^"]+"\)', text), f"{variable} missing or empty"
    assert re.search(r"set\(EXTENSION_DEPENDS PyTorch\)", text)
    for module in MODULES + ["CTSynthesisCore"]:
        assert f"add_subdirectory({module})" in text
    icon = re.search(r'EXTENSION_ICONURL "[^"]*/main/([^"]+)"', text).group(1)
    assert (REPO / icon).is_file(), f"extension icon {icon} missing"


@pytest.mark.parametrize("module", MODULES)
def test_module_cmake_lists_exactly_the_module_files(module):
    folder = REPO / module
    text = (folder / "CMakeLists.txt").read_text(encoding="utf-8").replace("${MODULE_NAME}", module)
    assert f"set(MODULE_NAME {module})" in (folder / "CMakeLists.txt").read_text(encoding="utf-8")
    assert "WITH_GENERIC_TESTS" in text and "slicerMacroBuildScriptedModule(" in text
    assert re.search(r"slicer_add_python_unittest\(SCRIPT \S+\.py\)", text)
    scripts = cmake_list(text, "MODULE_PYTHON_SCRIPTS")
    resources = cmake_list(text, "MODULE_PYTHON_RESOURCES")
    for listed in scripts + resources:
        assert (folder / listed).is_file(), f"{module}/CMakeLists.txt lists a missing file: {listed}"
    on_disk = {str(p.relative_to(folder)) for p in [folder / f"{module}.py", *(folder / f"{module}Lib").rglob("*.py")]}
    assert on_disk == set(scripts), f"unlisted or stale scripts: {sorted(on_disk ^ set(scripts))}"
    resource_files = {str(p.relative_to(folder)) for p in (folder / "Resources").rglob("*") if p.is_file()}
    assert resource_files == set(resources), f"unlisted or stale resources: {sorted(resource_files ^ set(resources))}"
    for required in [f"Resources/UI/{module}.ui", f"Resources/Icons/{module}.png"]:
        assert required in resources


def test_core_cmake_lists_exactly_the_core_files():
    text = (REPO / "CTSynthesisCore" / "CMakeLists.txt").read_text(encoding="utf-8")
    scripts = set(cmake_list(text, "CORE_PYTHON_SCRIPTS"))
    on_disk = {p.relative_to(REPO).as_posix() for p in (REPO / "CTSynthesisCore").rglob("*.py")}
    assert scripts == on_disk, f"unlisted or stale core scripts: {sorted(scripts ^ on_disk)}"


@pytest.mark.parametrize("module", MODULES)
def test_module_file_defines_the_slicer_classes(module):
    tree = ast.parse((REPO / module / f"{module}.py").read_text(encoding="utf-8"))
    classes = {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}
    for suffix in ["", "ParameterNode", "Widget", "Logic", "Test"]:
        assert f"{module}{suffix}" in classes, f"{module}{suffix} is missing"
    decorators = [ast.unparse(d) for d in classes[f"{module}ParameterNode"].decorator_list]
    assert "parameterNodeWrapper" in decorators
    bases = {name: [ast.unparse(b) for b in classes[f"{module}{name}"].bases] for name in ["", "Widget", "Logic", "Test"]}
    assert bases[""] == ["ScriptedLoadableModule"]
    assert "ScriptedLoadableModuleWidget" in bases["Widget"]
    assert bases["Logic"] == ["ScriptedLoadableModuleLogic"]
    assert bases["Test"] == ["ScriptedLoadableModuleTest"]
    source = ast.unparse(classes[module])
    for attribute in ["title", "categories", "contributors", "helpText", "acknowledgementText"]:
        assert f"self.parent.{attribute} =" in source


def test_acknowledgement_cites_both_papers():
    from CTSynthesisCore.slicer.panel import ACKNOWLEDGEMENT

    assert "2209.12104" in ACKNOWLEDGEMENT and "Lyu" in ACKNOWLEDGEMENT
    assert "CVPR 2022" in ACKNOWLEDGEMENT and "Fang" in ACKNOWLEDGEMENT
