"""Loading and saving MRItoCT models (shipped name or folder) with checksum verification.

Two kinds: ``diffusion`` (a :class:`ConditionalDenoiser`, sampled by any sampler)
and ``regression`` (the CNN and GAN baselines, one forward pass).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from CTSynthesisCore.errors import UserInputError
from CTSynthesisCore.weights import load_state_dict, read_metadata, resolve_model_folder, save_model_folder

from .baselines import RegressionConfig, RegressionNet
from .catalog import DEFAULT_MODEL  # noqa: F401 - re-exported
from .network import ConditionalDenoiser, DenoiserConfig

KINDS = ("diffusion", "regression")


@dataclass
class LoadedModel:
    """A ready-to-run network with what the pipeline needs from its metadata."""

    network: nn.Module
    metadata: dict[str, Any]

    @property
    def kind(self) -> str:
        return self.metadata.get("kind", "diffusion")

    @property
    def config(self) -> DenoiserConfig | RegressionConfig:
        return self.network.config

    @property
    def spacing_mm(self) -> tuple[float, float]:
        return tuple(self.metadata.get("spacing_mm", (1.0, 1.0)))[:2]

    @property
    def mri_percentile(self) -> float:
        return float(self.metadata.get("mri_percentile", 99.5))


def build_network(kind: str, network_arguments: dict[str, Any]) -> nn.Module:
    """The network of a model kind from its stored arguments."""
    if kind == "diffusion":
        return ConditionalDenoiser(DenoiserConfig.from_dict(network_arguments))
    if kind == "regression":
        return RegressionNet(RegressionConfig.from_dict(network_arguments))
    raise UserInputError(f"unknown model kind '{kind}' (one of {', '.join(KINDS)})")


def load_model(name_or_path: str = DEFAULT_MODEL, device: str = "cpu") -> LoadedModel:
    """Build the network described by the metadata and load its verified weights."""
    metadata = read_metadata(resolve_model_folder(name_or_path))
    if metadata.get("task") != "mritoct":
        raise UserInputError(f"model '{metadata['name']}' is not an MRItoCT model (task {metadata.get('task')!r})")
    network = build_network(metadata.get("kind", "diffusion"), metadata["network"])
    state = load_state_dict(metadata)
    try:
        network.load_state_dict(state)
    except RuntimeError as error:
        raise UserInputError(f"weights of '{metadata['name']}' do not fit its network: {str(error).splitlines()[0]}") from None
    network.eval().to(device)
    if isinstance(network, ConditionalDenoiser):
        network.clip_x0 = True
    return LoadedModel(network, metadata)


def save_model(folder, network: nn.Module, metadata: dict[str, Any], model_card: str | None = None):
    """Save a model folder (weights, metadata with sha256, model card)."""
    kind = "diffusion" if isinstance(network, ConditionalDenoiser) else "regression"
    metadata = {"task": "mritoct", "kind": kind, **metadata, "network": network.config.to_dict()}
    state = {k: v.detach().cpu() for k, v in network.state_dict().items()}
    return save_model_folder(folder, state, metadata, model_card)


def new_generator(device: str | torch.device, seed: int) -> torch.Generator:
    generator = torch.Generator(device=device)
    generator.manual_seed(int(seed))
    return generator
