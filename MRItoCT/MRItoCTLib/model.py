"""Loading and saving MRItoCT models (shipped name or folder) with checksum verification.

The model's kind (:data:`~MRItoCTLib.model_types.KINDS`) says how its network is rebuilt and run; its
intensity mapping (:class:`~MRItoCTLib.intensity.IntensityMapping`) travels in its metadata.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from CTSynthesisCore.errors import UserInputError
from CTSynthesisCore.weights import ModelCard, load_state_dict, read_metadata, resolve_model_folder, save_model_folder

from .catalog import DEFAULT_MODEL
from .intensity import DEFAULT_INTENSITY, IntensityMapping
from .model_types import ModelKind, kind_of, model_kind

TASK = "mritoct"


@dataclass
class LoadedModel:
    """A ready-to-run network with what the pipeline needs from its metadata."""

    network: nn.Module
    metadata: dict[str, Any]
    intensity: IntensityMapping

    @property
    def kind(self) -> ModelKind:
        return model_kind(self.metadata.get("kind", "diffusion"))

    @property
    def config(self) -> Any:
        return self.network.config

    @property
    def spacing_mm(self) -> tuple[float, float]:
        return tuple(self.metadata.get("spacing_mm", (1.0, 1.0)))[:2]


def load_model(name_or_path: str = DEFAULT_MODEL, device: str = "cpu") -> LoadedModel:
    """Build the network described by the metadata, with its intensity mapping, and load its verified weights."""
    metadata = read_metadata(resolve_model_folder(name_or_path))
    if metadata.get("task") != TASK:
        raise UserInputError(f"model '{metadata['name']}' is not an MRItoCT model (task {metadata.get('task')!r})")
    kind = model_kind(metadata.get("kind", "diffusion"))
    intensity = IntensityMapping.from_metadata(metadata)
    network = kind.build(kind.config_class.from_dict(metadata["network"]), intensity, for_synthesis=True)
    state = load_state_dict(metadata)
    try:
        network.load_state_dict(state)
    except RuntimeError as error:
        raise UserInputError(f"weights of '{metadata['name']}' do not fit its network: {str(error).splitlines()[0]}") from None
    network.eval().to(device)
    return LoadedModel(network, metadata, intensity)


def save_model(folder, network: nn.Module, metadata: dict[str, Any], model_card: ModelCard | None = None,
               intensity: IntensityMapping = DEFAULT_INTENSITY):
    """Save a model folder (weights, metadata with sha256 and the intensity mapping, model card)."""
    metadata = {"task": TASK, "kind": kind_of(network).name, **metadata, "intensity": intensity.to_dict(),
                "network": network.config.to_dict()}
    state = {k: v.detach().cpu() for k, v in network.state_dict().items()}
    return save_model_folder(folder, state, metadata, model_card)


def new_generator(device: str | torch.device, seed: int) -> torch.Generator:
    generator = torch.Generator(device=device)
    generator.manual_seed(int(seed))
    return generator
