"""Rewrite the file lists in the module and core CMakeLists.txt from the files on disk: the Python
scripts, and the shipped weights and sample data that the core lists as RESOURCES (so that
ctkMacroCompilePythonScript copies them into the build tree as well as the install tree).

Run after adding or removing a .py file, a weights file or a sample; Testing/test_packaging.py fails
until the lists match.
"""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def replace_list(path: Path, variable: str, items: list[str]) -> None:
    text = path.read_text(encoding="utf-8")
    block = f"set({variable}\n" + "".join(f"  {item}\n" for item in items) + "  )"
    path.write_text(re.sub(rf"set\({variable}\s.*?\)", block, text, flags=re.S), encoding="utf-8")


for module in ("MRItoCT", "SliceInterp"):
    folder = ROOT / module
    scripts = ["${MODULE_NAME}.py"] + sorted(p.relative_to(folder).as_posix() for p in (folder / f"{module}Lib").rglob("*.py"))
    replace_list(folder / "CMakeLists.txt", "MODULE_PYTHON_SCRIPTS", scripts)
replace_list(ROOT / "CTSynthesisCore" / "CMakeLists.txt", "CORE_PYTHON_SCRIPTS",
             sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "CTSynthesisCore").rglob("*.py")))
replace_list(ROOT / "CTSynthesisCore" / "CMakeLists.txt", "CORE_RUNTIME_RESOURCES",
             sorted(p.relative_to(ROOT).as_posix() for folder in ("model_weights", "Resources/SampleData")
                    for p in (ROOT / folder).rglob("*") if p.is_file()))
print("updated")
