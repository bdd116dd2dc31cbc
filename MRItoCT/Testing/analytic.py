"""Exact noise predictors for data distributions whose score is known in closed form.

Test support: used to test every sampler: with the exact denoiser, a correct sampler must
reproduce the data distribution (mean, variance, mixture weights).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from MRItoCTLib.processes import NoiseProcess


@dataclass
class GaussianMixtureDenoiser:
    """E[eps | x_t] for data whose every voxel is i.i.d. from a 1D Gaussian mixture."""

    process: NoiseProcess
    weights: tuple[float, ...]
    means: tuple[float, ...]
    stds: tuple[float, ...]

    def __call__(self, x: Tensor, t: Tensor, condition: Tensor | None = None) -> Tensor:
        shape = (-1,) + (1,) * (x.dim() - 1)
        alpha, sigma = (v.to(x.dtype).reshape(shape) for v in self.process.alpha_sigma(t.to(torch.float64)))
        log_terms, scores = [], []
        for weight, mean, std in zip(self.weights, self.means, self.stds):
            variance = alpha**2 * std**2 + sigma**2
            centred = x - alpha * mean
            log_terms.append(torch.log(torch.tensor(weight)) - 0.5 * centred**2 / variance - 0.5 * torch.log(variance))
            scores.append(-centred / variance)
        responsibilities = torch.softmax(torch.stack(log_terms), dim=0)
        score = (responsibilities * torch.stack(scores)).sum(0)
        return -sigma * score


def gaussian_denoiser(process: NoiseProcess, mean: float, std: float) -> GaussianMixtureDenoiser:
    """Exact denoiser for i.i.d. N(mean, std^2) voxels."""
    return GaussianMixtureDenoiser(process, (1.0,), (mean,), (std,))
