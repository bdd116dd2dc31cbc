"""Monte-Carlo sampling with running mean and variance: memory does not grow with the sample count."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import Tensor


@dataclass
class RunningMoments:
    """Chan et al.'s parallel update of count, mean and sum of squared deviations."""

    count: int = 0
    mean: Tensor | None = None
    m2: Tensor | None = None

    def add(self, samples: Tensor) -> None:
        """Add a chunk of samples stacked along dimension 0."""
        n = samples.shape[0]
        chunk_mean = samples.mean(dim=0)
        chunk_m2 = ((samples - chunk_mean) ** 2).sum(dim=0)
        if self.mean is None:
            self.count, self.mean, self.m2 = n, chunk_mean, chunk_m2
            return
        total = self.count + n
        delta = chunk_mean - self.mean
        self.mean = self.mean + delta * (n / total)
        self.m2 = self.m2 + chunk_m2 + delta**2 * (self.count * n / total)
        self.count = total

    def std(self) -> Tensor:
        """Sample standard deviation (zero for a single sample)."""
        if self.count < 2:
            return torch.zeros_like(self.mean)
        return torch.sqrt(self.m2 / (self.count - 1))


@dataclass
class MonteCarloResult:
    mean: Tensor
    std: Tensor
    nfe: int
    samples: list[Tensor] = field(default_factory=list)


def monte_carlo(draw: Callable[[int, int], tuple[Tensor, int]], total: int, chunk: int,
                keep_samples: bool = False) -> MonteCarloResult:
    """Draw ``total`` samples, ``chunk`` at a time; ``draw(first, k)`` returns (samples first..first+k-1 stacked,
    NFE per sample)."""
    if total < 1 or chunk < 1:
        raise ValueError("the number of samples and the chunk size must be at least 1")
    moments, kept, nfe = RunningMoments(), [], 0
    for start in range(0, total, chunk):
        samples, nfe = draw(start, min(chunk, total - start))
        moments.add(samples)
        if keep_samples:
            kept.extend(samples.unbind(0))
    return MonteCarloResult(moments.mean, moments.std(), nfe, kept)
