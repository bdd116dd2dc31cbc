"""Finding shipped models in ``model_weights/<name>/`` and loading them with sha256 verification.

Each model folder holds ``metadata.json`` (network and its arguments, intensity
maps, spacing, training record, ``weights_file`` and its ``sha256``), the weights
file (a PyTorch state dict) and ``MODEL_CARD.md``.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable

from .errors import UserInputError, read_json

WEIGHTS_ENV = "CTSYNTHESIS_WEIGHTS"


def weights_roots() -> list[Path]:
    """Folders searched for named models, in order."""
    roots = []
    if os.environ.get(WEIGHTS_ENV):
        roots.append(Path(os.environ[WEIGHTS_ENV]))
    roots.append(Path(__file__).resolve().parent.parent / "model_weights")  # source tree / Slicer install
    roots.append(Path(sys.prefix) / "share" / "ctsynthesis" / "model_weights")  # pip install
    return roots


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def resolve_model_folder(name_or_path: str | os.PathLike) -> Path:
    """A model folder from a shipped model's name or from a path to a folder."""
    candidate = Path(name_or_path)
    if candidate.is_dir():
        return candidate
    if candidate.is_file() and candidate.name == "metadata.json":
        return candidate.parent
    for root in weights_roots():
        if (root / str(name_or_path) / "metadata.json").is_file():
            return root / str(name_or_path)
    known = ", ".join(sorted(m["name"] for m in list_models())) or "none installed"
    raise UserInputError(f"model '{name_or_path}' not found (shipped models: {known})")


def read_metadata(folder: str | os.PathLike) -> dict[str, Any]:
    """The parsed ``metadata.json`` of a model folder, with its folder recorded under ``folder``."""
    path = Path(folder) / "metadata.json"
    metadata = read_json(path, f"model folder {folder} has no metadata.json")
    if not isinstance(metadata, dict):
        raise UserInputError(f"model metadata {path} is not a JSON object")
    for key in ("name", "weights_file", "sha256"):
        if key not in metadata:
            raise UserInputError(f"model metadata {path} lacks '{key}'")
    metadata["folder"] = str(Path(folder))
    return metadata


def verified_weights_path(metadata: dict[str, Any]) -> Path:
    """Path of the weights file after checking that its sha256 matches the metadata."""
    path = Path(metadata["folder"]) / metadata["weights_file"]
    if not path.is_file():
        raise UserInputError(f"weights file missing: {path}")
    actual = sha256_file(path)
    if actual != metadata["sha256"]:
        raise UserInputError(
            f"weights file {path} is corrupt or was changed (sha256 {actual[:12]}..., expected {metadata['sha256'][:12]}...)"
        )
    return path


def load_state_dict(metadata: dict[str, Any], map_location: str = "cpu") -> dict[str, Any]:
    """Load the verified state dict of a model (``torch.load`` with ``weights_only=True``)."""
    import torch

    path = verified_weights_path(metadata)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # a file that passed sha256 but still fails is a packaging error
        raise UserInputError(f"cannot load weights {path}: {str(error).splitlines()[0]}") from None


def save_checkpoint_file(checkpoint: dict[str, Any], path: Path) -> None:
    """``torch.save`` atomically: a temporary file beside ``path``, then a rename (an interrupted write leaves the
    previous checkpoint)."""
    import torch

    temporary = path.parent / f".{path.name}.tmp"
    torch.save(checkpoint, temporary)
    os.replace(temporary, path)


def list_models(task: str | None = None) -> list[dict[str, Any]]:
    """Metadata of every shipped model, optionally only those of one task (``mritoct``/``sliceinterp``)."""
    found: dict[str, dict[str, Any]] = {}
    for root in weights_roots():
        if not root.is_dir():
            continue
        for path in sorted(root.glob("*/metadata.json")):
            try:
                metadata = read_metadata(path.parent)
            except UserInputError:
                continue
            if task is None or metadata.get("task") == task:
                found.setdefault(metadata["name"], metadata)
    return list(found.values())


ModelCard = str | Callable[[dict[str, Any]], str]
"""A model card's text, or the function that renders it from the model's metadata."""


def save_model_folder(folder: str | os.PathLike, state_dict: dict[str, Any], metadata: dict[str, Any],
                      model_card: ModelCard | None = None) -> Path:
    """Write weights, metadata (with the weights' sha256) and model card into a model folder; a card given as a
    function is rendered from the metadata as written (sha256 included)."""
    import torch

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    weights_file = metadata.setdefault("weights_file", "model.pt")
    torch.save(state_dict, folder / weights_file)
    metadata["sha256"] = sha256_file(folder / weights_file)
    metadata.pop("folder", None)
    (folder / "metadata.json").write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    if callable(model_card):
        model_card = model_card(metadata)
    if model_card is not None:
        (folder / "MODEL_CARD.md").write_text(model_card, encoding="utf-8")
    return folder
