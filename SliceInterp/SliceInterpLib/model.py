"""Loading and saving SliceInterp cross-view models (shipped name or folder) with checksum verification."""

from __future__ import annotations

from typing import Any

from CTSynthesisCore.errors import UserInputError
from CTSynthesisCore.weights import ModelCard, load_state_dict, read_metadata, resolve_model_folder, save_model_folder

from .catalog import DEFAULT_MODEL
from .networks import INTENSITY, CrossViewConfig, CrossViewNet

TASK = "sliceinterp"


def load_crossview(name_or_path: str = DEFAULT_MODEL) -> tuple[CrossViewNet, dict[str, Any]]:
    """The verified cross-view network (on the CPU, in eval mode) and its metadata."""
    metadata = read_metadata(resolve_model_folder(name_or_path))
    if metadata.get("task") != TASK:
        raise UserInputError(f"model '{metadata['name']}' is not a SliceInterp model (task {metadata.get('task')!r})")
    INTENSITY.check(metadata)
    try:
        config = CrossViewConfig.from_dict(metadata["network"])
    except (TypeError, ValueError) as error:
        raise UserInputError(f"model '{metadata['name']}' describes no valid network: {error}") from None
    network = CrossViewNet(config)
    try:
        network.load_state_dict(load_state_dict(metadata))
    except RuntimeError as error:
        raise UserInputError(f"weights of '{metadata['name']}' do not fit its network: {str(error).splitlines()[0]}") from None
    return network.eval(), metadata


def save_crossview(folder, network: CrossViewNet, metadata: dict[str, Any], model_card: ModelCard | None = None):
    """Save a model folder (weights, metadata with sha256, model card)."""
    metadata = {"task": TASK, "kind": "crossview", **metadata, "intensity": INTENSITY.to_dict(),
                "network": network.config.to_dict()}
    state = {k: v.detach().cpu() for k, v in network.state_dict().items()}
    return save_model_folder(folder, state, metadata, model_card)
