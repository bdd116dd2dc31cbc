"""The shipped model cards: rendered from their metadata alone, with every section a user needs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SECTIONS = ("## Intended use", "## Out of scope", "## Input", "## Training data", "## Results", "## Known limitations",
            "## Licence", "## How to cite", "## Version and checksum")


def card_renderer(task: str):
    if task == "mritoct":
        from MRItoCTLib.research.model_card import model_card
    else:
        from SliceInterpLib.research.model_card import model_card
    return model_card


@pytest.mark.parametrize("folder", sorted(p.parent for p in (REPO / "model_weights").glob("*/metadata.json")),
                         ids=lambda folder: folder.name)
def test_shipped_card_is_its_metadata_rendered_with_every_section(folder):
    metadata = json.loads((folder / "metadata.json").read_text(encoding="utf-8"))
    card = (folder / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert card == card_renderer(metadata["task"])(metadata), "regenerate the card from its metadata"
    for section in SECTIONS:
        assert section in card, section
    assert metadata["sha256"][:12] in card and metadata["date"] in card
    assert "Research use only" in card and "licence" in card.lower()
    if metadata["task"] == "mritoct":
        assert "Dosimetric accuracy has not been evaluated" in card
        from CTSynthesisCore.model_cards import CT_SOURCES

        cases = metadata["training"].get("train_cases", [])
        sources = [text for stem, text in CT_SOURCES.items() if any(stem in case for case in cases)]
        assert sources and all(text in card for text in sources), "each real training CT is cited with its licence"


def test_a_deterministic_model_card_says_it_has_no_uncertainty():
    from MRItoCTLib.research.model_card import model_card

    metadata = json.loads((REPO / "model_weights" / "mritoct-cnn" / "metadata.json").read_text(encoding="utf-8"))
    card = model_card(metadata)
    assert "deterministic baseline" in card and "No uncertainty" in card
    assert "Monte-Carlo sample is a plausible CT" not in card


def test_a_benchmark_record_appears_in_the_card(tmp_path):
    from CTSynthesisCore.model_cards import record_evaluation
    from MRItoCTLib.research.model_card import model_card

    source = REPO / "model_weights" / "mritoct-gan" / "metadata.json"
    (tmp_path / "metadata.json").write_text(source.read_text(encoding="utf-8"), encoding="utf-8")
    record = {"title": "A test table", "columns": ["method", "MAE (HU)"], "rows": [["water", "116.3"]],
              "note": "Held out.", "command": "python benchmarks/x.py --record"}
    record_evaluation(tmp_path, "test", record, model_card)
    card = (tmp_path / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert "### A test table" in card and "| water | 116.3 |" in card and "`python benchmarks/x.py --record`" in card
    stored = json.loads((tmp_path / "metadata.json").read_text(encoding="utf-8"))
    assert stored["evaluation"]["test"] == record and stored["sha256"] == json.loads(source.read_text())["sha256"]


def test_training_hours_count_every_model_a_model_builds_on():
    """A fine-tuned residual model's hours: its own, the model it started from (with that model's own earlier
    training) and its frozen mean network's."""
    from CTSynthesisCore.model_cards import cpu_hours, lineage_record

    cnn = {"name": "cnn", "sha256": "c" * 64, "training": {"seconds": 1800, "steps": 10,
                                                          "initialised_from": {"seconds": 1800}}}
    parent = {"name": "parent", "sha256": "p" * 64, "training": {"seconds": 3600, "steps": 20}}
    residual = {"training": {"seconds": 7200, "initialised_from": lineage_record(parent, "data"),
                             "mean_model": lineage_record(cnn, "data")}}
    assert residual["training"]["mean_model"]["seconds"] == 3600
    assert cpu_hours(residual) == pytest.approx(4.0)


def test_a_fine_tune_over_its_parents_mean_network_counts_that_network_once():
    """A residual model fine-tuned from a residual model with the same frozen mean: the parent's hours already
    hold the mean's; a new mean network counts."""
    from CTSynthesisCore.model_cards import cpu_hours, lineage_record

    cnn = {"name": "cnn", "sha256": "c" * 64, "training": {"seconds": 3600, "steps": 10}}
    parent = {"name": "parent", "sha256": "p" * 64,
              "training": {"seconds": 7200, "steps": 20, "mean_model": lineage_record(cnn, "data")}}
    fine_tune = {"training": {"seconds": 1800, "initialised_from": lineage_record(parent, "data"),
                              "mean_model": lineage_record(cnn, "data")}}
    assert fine_tune["training"]["initialised_from"]["seconds"] == 3 * 3600
    assert cpu_hours(fine_tune) == pytest.approx(3.5)
    other_cnn = {"name": "cnn-2", "sha256": "d" * 64, "training": {"seconds": 3600, "steps": 10}}
    fine_tune["training"]["mean_model"] = lineage_record(other_cnn, "data")
    assert cpu_hours(fine_tune) == pytest.approx(4.5)


def test_a_new_mean_network_fine_tuned_from_the_parents_mean_counts_only_its_own_training():
    """Both networks of a residual model fine-tuned together: the new mean started from the parent's mean, whose
    hours the parent already holds, so only the new mean's own training is added."""
    from CTSynthesisCore.model_cards import cpu_hours, lineage_record

    cnn = {"name": "cnn", "sha256": "c" * 64, "training": {"seconds": 3600, "steps": 10}}
    parent = {"name": "parent", "sha256": "p" * 64,
              "training": {"seconds": 7200, "steps": 20, "mean_model": lineage_record(cnn, "data")}}
    new_cnn = {"name": "cnn", "sha256": "n" * 64,
               "training": {"seconds": 900, "steps": 5, "initialised_from": lineage_record(cnn, "data")}}
    fine_tune = {"training": {"seconds": 1800, "initialised_from": lineage_record(parent, "data"),
                              "mean_model": lineage_record(new_cnn, "data")}}
    assert fine_tune["training"]["mean_model"]["seconds"] == 4500
    assert cpu_hours(fine_tune) == pytest.approx((1800 + 3 * 3600 + 900) / 3600)


def test_an_mritoct_card_states_the_rendering_recipe_its_data_was_made_with():
    """Item 1 of the data recipe: the tissue ranges of the domain randomisation are in the card, from the
    dataset's own record (``dataset.json``), so the card matches the data it was trained on."""
    from MRItoCTLib.research.ct_pairs import RECIPE
    from MRItoCTLib.research.model_card import model_card

    metadata = {"name": "m", "kind": "residual", "training": {"data_recipe": json.loads(json.dumps(RECIPE))}}
    card = model_card(metadata)
    muscle = RECIPE["tissues"]["muscle"]["t2_ms"]
    assert "Rendering recipe of the CT-derived MRIs" in card and f"muscle {RECIPE['tissues']['muscle']['proton_density'][0]:g}" in card
    assert f"{muscle[0]:g}-{muscle[1]:g}" in card and "echo ms" in card
    assert "Rendering recipe" not in model_card({"name": "m", "training": {}}), "real pairs have no recipe"


def test_lineage_line_tells_the_parents_last_run_from_its_training_in_all():
    from CTSynthesisCore.model_cards import lineage_line

    parent = {"model": "m", "sha256": "ab" * 32, "steps": 900, "seconds": 6419}
    line = lineage_line({"initialised_from": parent})
    assert "900 steps in its last run" in line and "6419 s of training in all" in line
    assert lineage_line({}) == ""
