"""The README and the docs pages: every image and relative link points at a file of the repository."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PAGES = [REPO / "README.md", REPO / "ARCHITECTURE.md", *sorted((REPO / "docs").glob("*.md")),
         *sorted((REPO / "model_weights").glob("*/MODEL_CARD.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def relative_targets(page: Path) -> list[str]:
    """Link and image targets of a markdown page that are not web addresses or anchors."""
    return [target.split("#")[0] for target in LINK.findall(page.read_text(encoding="utf-8"))
            if not re.match(r"[a-z]+:", target) and not target.startswith("#")]


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.relative_to(REPO).as_posix())
def test_every_relative_link_and_image_exists(page):
    missing = [target for target in relative_targets(page) if not (page.parent / target).exists()]
    assert not missing, f"{page.relative_to(REPO)} links to missing files: {missing}"


def test_the_readme_starts_with_what_a_slicer_user_needs():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    headings = re.findall(r"^## (.+)$", text, re.MULTILINE)
    for needed in ("Install", "Quick start: MRI to CT", "Quick start: slice interpolation", "Models",
                   "Reading the outputs", "Hardware and expected times", "Troubleshooting"):
        assert needed in headings, needed
    assert headings.index("Install") < headings.index("Development"), "users first, developers after"
    assert "Research use only" in text.split("## Install")[0], "the status box is above the installation"
    assert len(text.splitlines()) < 300, "beyond the tables on real images, research tables belong in docs/"


def test_every_docs_page_is_linked_from_the_readme():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    for page in sorted((REPO / "docs").glob("*.md")):
        assert f"docs/{page.name}" in text, page.name
