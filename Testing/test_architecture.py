"""The layering rules of ARCHITECTURE.md, enforced on every import of the tree (including imports inside
functions), and shown to catch each kind of violation on a small made-up tree."""

from __future__ import annotations

from pathlib import Path

import pytest

from import_rules import import_cycles, imports_of, module_files, rule_violations, tier

REPO = Path(__file__).resolve().parent.parent


def test_every_import_follows_the_layering_rules():
    assert rule_violations(imports_of(REPO)) == []


def test_there_is_no_import_cycle():
    assert import_cycles(imports_of(REPO)) == []


def test_every_tier_has_modules():
    tiers = {tier(name) for name in module_files(REPO)}
    assert tiers == {"engine", "research", "slicer"}


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    for package in ("CTSynthesisCore", "MRItoCT/MRItoCTLib", "SliceInterp/SliceInterpLib"):
        (root / package).mkdir(parents=True, exist_ok=True)
        (root / package / "__init__.py").touch()
    return root


@pytest.mark.parametrize("files, expected", [
    ({"MRItoCT/MRItoCTLib/pipeline.py": "def run():\n    import slicer\n"}, "only the Slicer side"),
    ({"CTSynthesisCore/volume_io.py": "from .slicer.mrml import x\n", "CTSynthesisCore/slicer/__init__.py": "",
      "CTSynthesisCore/slicer/mrml.py": "x = 1\n"}, "only the Slicer side"),
    ({"MRItoCT/MRItoCTLib/research/training.py": "from CTSynthesisCore.slicer import mrml\n",
      "MRItoCT/MRItoCTLib/research/__init__.py": "", "CTSynthesisCore/slicer/__init__.py": "",
      "CTSynthesisCore/slicer/mrml.py": ""}, "only the Slicer side"),
    ({"SliceInterp/SliceInterpLib/upsample.py": "from MRItoCTLib import model\n",
      "MRItoCT/MRItoCTLib/model.py": ""}, "never import each other"),
    ({"CTSynthesisCore/batch.py": "def f():\n    from MRItoCTLib.pipeline import synthesize\n",
      "MRItoCT/MRItoCTLib/pipeline.py": ""}, "the core never imports"),
    ({"MRItoCT/MRItoCTLib/pipeline.py": "from .research.training import train\n",
      "MRItoCT/MRItoCTLib/research/__init__.py": "", "MRItoCT/MRItoCTLib/research/training.py": ""},
     "the engine never needs research"),
])
def test_each_rule_catches_its_violation(tmp_path, files, expected):
    problems = rule_violations(imports_of(write_tree(tmp_path, files)))
    assert any(expected in problem for problem in problems), problems


def test_a_cycle_through_a_function_level_import_is_found(tmp_path):
    """The shape of the cycle SliceInterpLib once had: crossview -> upsample -> training -> evaluation -> upsample."""
    root = write_tree(tmp_path, {
        "SliceInterp/SliceInterpLib/crossview.py": "from .upsample import CHUNK\n",
        "SliceInterp/SliceInterpLib/upsample.py": "def run():\n    from .training import adapt\n",
        "SliceInterp/SliceInterpLib/training.py": "from .evaluation import psnr\n",
        "SliceInterp/SliceInterpLib/evaluation.py": "from .upsample import run\n",
    })
    assert import_cycles(imports_of(root)) == [["SliceInterpLib.evaluation", "SliceInterpLib.training",
                                                "SliceInterpLib.upsample"]]


def test_architecture_md_names_only_files_that_exist():
    """ARCHITECTURE.md says where each change goes; every file it names must be there."""
    import re

    text = (REPO / "ARCHITECTURE.md").read_text(encoding="utf-8")
    named = set(re.findall(r"`([\w/<>.]+\.py)`", text))
    files = {path.relative_to(REPO).as_posix() for path in REPO.rglob("*.py") if ".venv" not in path.parts}
    missing = [name for name in named if "<" not in name
               and not any(path == name or path.endswith("/" + name) for path in files)]
    assert len(named) > 10 and not missing, missing
