"""Noise processes in continuous time, t in [t_min, 1].

A sample at time t is ``x_t = a(t) x_0 + s(t) eps``. The VP SDE is the continuous
view of DDPM with linear betas 1e-4..0.02 over T = 1000 steps
(beta(t) = 0.1 + 19.9 t); the VE SDE is the score model's (sigma_min..sigma_max).
Every sampler only needs ``alpha_sigma``, the SDE coefficients and the prior.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class VPProcess:
    """Variance-preserving SDE (DDPM): dx = -beta(t) x / 2 dt + sqrt(beta(t)) dw."""

    beta_min: float = 0.1  # = T * 1e-4
    beta_max: float = 20.0  # = T * 0.02
    t_min: float = 1e-3  # = 1 / T, the first DDPM timestep
    name: str = "vp"

    def log_alpha(self, t: Tensor) -> Tensor:
        return -0.25 * t**2 * (self.beta_max - self.beta_min) - 0.5 * t * self.beta_min

    def alpha_sigma(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """Signal scale a(t) and noise scale s(t) of the marginal."""
        log_alpha = self.log_alpha(t)
        return torch.exp(log_alpha), torch.sqrt(-torch.expm1(2.0 * log_alpha))

    def beta(self, t: Tensor) -> Tensor:
        return self.beta_min + t * (self.beta_max - self.beta_min)

    def drift_coefficient(self, t: Tensor) -> Tensor:
        """f(x, t) = drift_coefficient(t) * x."""
        return -0.5 * self.beta(t)

    def diffusion_squared(self, t: Tensor) -> Tensor:
        """g(t)^2."""
        return self.beta(t)

    def prior_std(self) -> float:
        return 1.0

    def t_from_log_snr(self, log_snr: Tensor) -> Tensor:
        """Inverse of lambda(t) = log(a/s), for log-SNR-uniform time grids."""
        log_alpha = 0.5 * torch.nn.functional.logsigmoid(2.0 * log_snr)
        delta = self.beta_max - self.beta_min
        return (-self.beta_min + torch.sqrt(self.beta_min**2 - 4.0 * delta * log_alpha)) / delta


@dataclass(frozen=True)
class VEProcess:
    """Variance-exploding SDE (score model): dx = sqrt(d sigma^2 / dt) dw."""

    sigma_min: float = 0.01
    sigma_max: float = 25.0
    t_min: float = 1e-5
    name: str = "ve"

    def sigma(self, t: Tensor) -> Tensor:
        return self.sigma_min * (self.sigma_max / self.sigma_min) ** t

    def alpha_sigma(self, t: Tensor) -> tuple[Tensor, Tensor]:
        return torch.ones_like(t), self.sigma(t)

    def drift_coefficient(self, t: Tensor) -> Tensor:
        return torch.zeros_like(t)

    def diffusion_squared(self, t: Tensor) -> Tensor:
        return self.sigma(t) ** 2 * 2.0 * math.log(self.sigma_max / self.sigma_min)

    def prior_std(self) -> float:
        return self.sigma_max

    def t_from_log_snr(self, log_snr: Tensor) -> Tensor:
        return torch.log(torch.exp(-log_snr) / self.sigma_min) / math.log(self.sigma_max / self.sigma_min)


NoiseProcess = VPProcess | VEProcess


def make_process(name: str, **options: float) -> NoiseProcess:
    """A process by name (``vp`` or ``ve``) with optional parameters."""
    if name == "vp":
        return VPProcess(**options)
    if name == "ve":
        return VEProcess(**options)
    raise ValueError(f"unknown noise process '{name}' (vp or ve)")


def log_snr(process: NoiseProcess, t: Tensor) -> Tensor:
    """lambda(t) = log(a(t) / s(t))."""
    alpha, sigma = process.alpha_sigma(t)
    return torch.log(alpha) - torch.log(sigma)
