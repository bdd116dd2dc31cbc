"""Model-card sections both modules share, and the evaluation records benchmarks store in a model's metadata.

A model card is rendered from ``metadata.json`` alone, so a card can always be regenerated and never
disagrees with the model it describes. Benchmarks add their results with :func:`record_evaluation`
(``metadata["evaluation"][key]``: title, command, note, columns, rows), and the card shows every record.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

CITATIONS = {
    "mritoct": "Lyu Q, Wang G. Conversion Between CT and MRI Images Using Diffusion and Score-Matching Models. "
               "arXiv:2209.12104, 2022.",
    "sliceinterp": "Fang C, Wang L, Zhang D, Xu J, Yuan Y, Han J. Incremental Cross-view Mutual Distillation for "
                   "Self-supervised Medical CT Synthesis. CVPR 2022, pp. 20645-20654.",
}
EXTENSION = "CTSynthesis: MRItoCT and SliceInterp for 3D Slicer (Apache-2.0)"
TOTALSEGMENTATOR = ("Wasserthal J et al. TotalSegmentator: robust segmentation of 104 anatomic structures in CT images. "
                    "Radiology: Artificial Intelligence, 2023; file from the wasserth/TotalSegmentator repository, "
                    "Apache-2.0")
SOFT_TISSUE_SARCOMA = ("Vallieres M, Freeman CR, Skamene SR, El Naqa I. A radiomics model from joint FDG-PET and MRI "
                       "texture features for the prediction of lung metastases in soft-tissue sarcomas of the "
                       "extremities. Physics in Medicine and Biology 60(14), 5471-5496 (2015); TCIA Soft-tissue-Sarcoma, "
                       "doi:10.7937/K9/TCIA.2015.7GO2GSKS, CC BY 3.0; DICOM from the oncoray/mirp repository's test data")
PELVIC_REFERENCE = ("Yorke AA, McDonald GC, Solis D, Guerrero T. Pelvic Reference Data. TCIA, 2019, "
                    "doi:10.7937/TCIA.2019.WOSKQ5OO, CC BY 3.0; DICOM from the "
                    "MarcoSaguatti/Multimetric_analysis_of_automatic_contours repository")
CT_SOURCES = {  # a training volume's file stem -> what it is, citation and licence
    "totalseg_example_ct_3mm": f"abdomen-pelvis CT, 3 mm. {TOTALSEGMENTATOR}",
    "totalseg_aorta_ct_1p5mm": f"chest and upper abdomen CT, 1.5 mm. {TOTALSEGMENTATOR}",
    "crlm1004_abdomen_ct_5mm": "abdominal CT, 5 mm (CRLM-CT-1004). Simpson AL et al. Preoperative CT and survival "
                               "data for patients undergoing resection of colorectal liver metastases. Scientific Data "
                               "11, 172 (2024); TCIA Colorectal-Liver-Metastases, doi:10.7937/QXK2-QG03, CC BY 4.0",
    "crlm1006_abdomen_ct_5mm": "abdominal CT, 5 mm (CRLM-CT-1006), same collection, citation and licence as "
                               "CRLM-CT-1004; DICOM from the oncoray/mirp repository's test data",
    "lidc0314_chest_ct_1mm": "chest CT, 1 mm (LIDC-IDRI-0314). Armato SG III et al. The Lung Image Database Consortium "
                             "(LIDC) and Image Database Resource Initiative (IDRI). Medical Physics 38(2), 915-931 "
                             "(2011); TCIA LIDC-IDRI, doi:10.7937/K9/TCIA.2015.LO9QL9SX, CC BY 3.0; DICOM from the "
                             "oncoray/mirp repository's test data",
    **{f"sts_00{n}_thigh_ct_3mm": f"thigh or hip CT of a PET/CT, 3.3 mm, cropped around a soft-tissue sarcoma "
                                  f"(STS_00{n}). {SOFT_TISSUE_SARCOMA}" for n in (1, 2, 3)},
    **{f"pelvicref00{n}_pelvis_body_ct_3mm": f"pelvis planning CT, 3 mm, its central 100 slices cropped to the body "
                                             f"(Pelvic-Ref-00{n}). {PELVIC_REFERENCE}" for n in (2, 3)},
    **{f"pelvicref00{n}_pelvis_ct_3mm": f"pelvis planning CT, 3 mm (Pelvic-Ref-00{n}). {PELVIC_REFERENCE}"
       for n in (2, 3, 5)},
}


def source_lines(names: list[str]) -> str:
    """One markdown bullet per known real CT among training case or volume names (with citation and licence)."""
    found = [(stem, text) for stem, text in CT_SOURCES.items() if any(stem in name for name in names)]
    return "\n".join(f"- `{stem}`: {text}." for stem, text in found) or "- no real CT"


def version_line(metadata: dict[str, Any]) -> str:
    """'Version: <name> <sha256 prefix>, trained <date>' (the weights' checksum identifies a version)."""
    date = metadata.get("date") or metadata.get("training", {}).get("date", "date not recorded")
    return f"Version: `{metadata['name']}` weights sha256 `{str(metadata.get('sha256', ''))[:12]}`, {date}."


def lineage_record(metadata: dict[str, Any], data: Any) -> dict[str, Any]:
    """What a model records of a model it builds on, the one it was fine-tuned from or a residual model's mean
    network (``data``: that model's training data; ``seconds``: all of its training, earlier training included)."""
    training = metadata.get("training", {})
    record = {"model": metadata["name"], "sha256": metadata.get("sha256"), "steps": training.get("steps"),
              "seconds": round(cpu_hours(metadata) * 3600), "data": data}
    if training.get("mean_model"):
        record["mean_model_sha256"] = training["mean_model"].get("sha256")
    if training.get("initialised_from"):
        record["initialised_from_sha256"] = training["initialised_from"].get("sha256")
        record["initialised_from_seconds"] = training["initialised_from"].get("seconds")
    return record


def lineage_line(training: dict[str, Any]) -> str:
    """The card's line on the model that a fine-tuned model started from (empty when trained from scratch)."""
    parent = training.get("initialised_from")
    return (f"\n- Initialised from `{parent['model']}` (sha256 {str(parent.get('sha256'))[:12]}...: {parent.get('steps')} "
            f"steps in its last run, {parent.get('seconds')} s of training in all), then trained as below."
            if parent else "")


def cpu_hours(metadata: dict[str, Any]) -> float:
    """Training time in hours, with the earlier training this model was initialised from and, for a residual
    model, its mean network's training, each hour once: a parent trained over the same mean already counts it, and
    a new mean fine-tuned from the parent's mean counts only its own training beyond that."""
    training = metadata.get("training", {})
    parent, mean = training.get("initialised_from") or {}, training.get("mean_model") or {}
    parents_mean = parent.get("mean_model_sha256")
    if mean and parents_mean == mean.get("sha256"):
        mean_seconds = 0.0
    elif mean and parents_mean and mean.get("initialised_from_sha256") == parents_mean:
        mean_seconds = float(mean.get("seconds") or 0) - float(mean.get("initialised_from_seconds") or 0)
    else:
        mean_seconds = float(mean.get("seconds") or 0)
    return (float(training.get("seconds") or 0) + float(parent.get("seconds") or 0) + mean_seconds) / 3600


def mean_model_line(training: dict[str, Any]) -> str:
    """The card's line on a residual model's frozen mean network (empty for other models)."""
    mean = training.get("mean_model")
    return (f"\n- Mean network (frozen): `{mean['model']}` (sha256 {str(mean.get('sha256'))[:12]}..., "
            f"{mean.get('steps')} steps in its last run, {mean.get('seconds')} s of training in all)." if mean else "")


def evaluation_sections(metadata: dict[str, Any]) -> str:
    """Every evaluation record as a markdown section: title, table, note and the command that produced it."""
    parts = []
    for record in metadata.get("evaluation", {}).values():
        header = "| " + " | ".join(record["columns"]) + " |\n|" + "---|" * len(record["columns"])
        rows = "\n".join("| " + " | ".join(str(cell) for cell in row) + " |" for row in record["rows"])
        parts.append(f"### {record['title']}\n\n{header}\n{rows}\n\n{record.get('note', '')}\n"
                     f"Command: `{record['command']}`\n")
    return "\n".join(parts) if parts else "No evaluation recorded beyond the validation figure above.\n"


def closing_sections(metadata: dict[str, Any], task: str) -> str:
    """Licence, how to cite, version and checksum: the end of every card."""
    return f"""## Licence
{metadata.get('licence', 'Apache-2.0')}. The training data's own licences are listed under Training data.

## How to cite
The method: {CITATIONS[task]}
The implementation and weights: {EXTENSION}.

## Version and checksum
{version_line(metadata)} The sha256 is recorded in `metadata.json` and verified on every load.
"""


def update_model_metadata(folder: str | Path, update: Callable[[dict[str, Any]], None],
                          render: Callable[[dict[str, Any]], str]) -> None:
    """Change a model folder's ``metadata.json`` in place with ``update`` and rewrite its MODEL_CARD.md with
    ``render`` (the module's card function). The weights and their checksum are not touched."""
    path = Path(folder) / "metadata.json"
    metadata = json.loads(path.read_text(encoding="utf-8"))
    update(metadata)
    path.write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
    (Path(folder) / "MODEL_CARD.md").write_text(render(metadata), encoding="utf-8")


def record_evaluation(folder: str | Path, key: str, record: dict[str, Any],
                      render: Callable[[dict[str, Any]], str]) -> None:
    """Store a benchmark's ``record`` as ``evaluation[key]`` in a model folder's metadata (and card)."""
    update_model_metadata(folder, lambda metadata: metadata.setdefault("evaluation", {}).update({key: record}),
                          render)
