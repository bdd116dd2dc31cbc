"""Loading a trained MRItoCT model (shipped name or folder) with checksum verification."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from CTSynthesisCore.errors import UserInputError
from CTSynthesisCore.weights import load_state_dict, read_metadata, resolve_model_folder, save_model_folder

from .network import ConditionalDenoiser, DenoiserConfig

DEFAULT_MODEL = "mritoct-ddpm"


@dataclass
class LoadedModel:
    """A ready-to-run network with what the pipeline needs from its metadata."""

    network: ConditionalDenoiser
    metadata: dict[str, Any]

    @property
    def config(self) -> DenoiserConfig:
        return self.network.config

    @property
    def spacing_mm(self) -> tuple[float, float]:
        return tuple(self.metadata.get("spacing_mm", (1.0, 1.0)))[:2]

    @property
    def mri_percentile(self) -> float:
        return float(self.metadata.get("mri_percentile", 99.5))


def load_model(name_or_path: str = DEFAULT_MODEL, device: str = "cpu") -> LoadedModel:
    """Build the network described by the metadata and load its verified weights."""
    metadata = read_metadata(resolve_model_folder(name_or_path))
    if metadata.get("task") != "mritoct":
        raise UserInputError(f"model '{metadata['name']}' is not an MRItoCT model (task {metadata.get('task')!r})")
    if metadata.get("kind", "diffusion") != "diffusion":
        raise UserInputError(f"model '{metadata['name']}' is a {metadata.get('kind')} model; synthesis needs a diffusion model")
    network = ConditionalDenoiser(DenoiserConfig.from_dict(metadata["network"]))
    state = load_state_dict(metadata)
    try:
        network.load_state_dict(state)
    except RuntimeError as error:
        raise UserInputError(f"weights of '{metadata['name']}' do not fit its network: {str(error).splitlines()[0]}") from None
    network.eval().to(device)
    network.clip_x0 = True
    return LoadedModel(network, metadata)


def save_model(folder, network: ConditionalDenoiser, metadata: dict[str, Any], model_card: str | None = None):
    """Save a diffusion model folder (weights, metadata with sha256, model card)."""
    metadata = {"task": "mritoct", "kind": "diffusion", **metadata, "network": network.config.to_dict()}
    state = {k: v.detach().cpu() for k, v in network.state_dict().items()}
    return save_model_folder(folder, state, metadata, model_card)


def new_generator(device: str | torch.device, seed: int) -> torch.Generator:
    generator = torch.Generator(device=device)
    generator.manual_seed(int(seed))
    return generator
