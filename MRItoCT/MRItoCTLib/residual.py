"""Residual diffusion: a regression network gives the mean CT, a conditional diffusion model samples what it misses.

In the spirit of CorrDiff (Mardani et al., "Residual corrective diffusion modeling for km-scale atmosphere
downscaling", Communications Earth & Environment 2025): a frozen regression UNet (the CNN baseline) predicts
the conditional mean, and the denoiser, conditioned on the MRI and on that mean, learns the residual
``(CT - mean) * residual_scale``. Each Monte-Carlo sample is mean + residual sample, so the samples' mean
starts from the regression's answer and their spread is the diffusion model's uncertainty about the residual.
Every sampler works unchanged: it samples the residual with the extended condition.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from .baselines import RegressionConfig, RegressionNet
from .intensity import DEFAULT_INTENSITY, IntensityMapping
from .network import ConditionalDenoiser, DenoiserConfig


@dataclass
class ResidualConfig(DenoiserConfig):
    """A denoiser's configuration plus its mean network's and the residual's scale."""

    mean_network: dict[str, Any] = field(default_factory=dict)  # the RegressionConfig of the mean network
    residual_scale: float = 4.0  # residual (CT units of [-1, 1]) x this is diffused; 4: a CNN residual of std 104 HU
    # becomes std 0.21 and 0.5 % of voxels (bone edges, beyond 503 HU) are clipped

    def __post_init__(self) -> None:
        if self.mean_network:  # one form whether built here or read back from JSON (tuples, defaults filled in)
            self.mean_network = RegressionConfig.from_dict(self.mean_network).to_dict()

    @property
    def unet_condition_channels(self) -> int:
        return self.condition_channels + 1  # the MRI stack and the mean CT

    @property
    def mean_config(self) -> RegressionConfig:
        return RegressionConfig.from_dict(self.mean_network)

    @property
    def size_multiple(self) -> int:
        return max(super().size_multiple, self.mean_config.size_multiple)


class ResidualDiffusion(ConditionalDenoiser):
    """A denoiser of the residual; ``condition`` in its calls is the extended one of :meth:`extended_condition`."""

    def __init__(self, config: ResidualConfig, intensity: IntensityMapping = DEFAULT_INTENSITY,
                 clip_x0: bool = False) -> None:
        super().__init__(config, clip_x0)
        if config.mean_config.context_slices != config.context_slices:
            raise ValueError("the mean network and the denoiser must see the same context slices")
        self.mean_network = RegressionNet(config.mean_config, intensity)
        self.mean_network.requires_grad_(False)

    def train(self, mode: bool = True) -> "ResidualDiffusion":
        """The mean network stays frozen, batch-norm statistics included."""
        super().train(mode)
        self.mean_network.eval()
        return self

    def mean(self, mri: Tensor) -> Tensor:
        """The regression's CT in [-1, 1] for an MRI condition stack."""
        with torch.no_grad():
            return self.mean_network(mri).clamp(-1.0, 1.0)

    @staticmethod
    def extended_condition(mri: Tensor, mean: Tensor) -> Tensor:
        return torch.cat([mri, mean.to(mri.dtype)], dim=1)

    def residual_target(self, ct: Tensor, mean: Tensor) -> Tensor:
        """What is diffused: the scaled residual, clipped to [-1, 1] as sampled x0 is."""
        return ((ct - mean) * self.config.residual_scale).clamp(-1.0, 1.0)

    def ct_from_residual(self, mean: Tensor, residual: Tensor) -> Tensor:
        return (mean + residual / self.config.residual_scale).clamp(-1.0, 1.0)
