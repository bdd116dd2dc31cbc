"""Training loops for the conditional denoiser on paired 2D slices."""

from __future__ import annotations

import torch
from torch import Tensor

from CTSynthesisCore.progress import CancelToken, ProgressCallback, no_progress

from .network import ConditionalDenoiser, diffusion_loss


def train_denoiser_steps(network: ConditionalDenoiser, ct: Tensor, condition: Tensor, steps: int,
                         batch_size: int = 8, learning_rate: float = 2e-4, seed: int = 0,
                         progress: ProgressCallback = no_progress, cancel: CancelToken | None = None) -> list[float]:
    """Optimise the diffusion loss for ``steps`` minibatches drawn from paired slices (N, 1, H, W)."""
    generator = torch.Generator(device=ct.device).manual_seed(seed)
    optimizer = torch.optim.AdamW(network.parameters(), lr=learning_rate)
    network.train()
    losses = []
    for step in range(steps):
        if cancel is not None:
            cancel.raise_if_set()
        index = torch.randint(0, ct.shape[0], (min(batch_size, ct.shape[0]),), generator=generator, device=ct.device)
        loss = diffusion_loss(network, ct[index], condition[index], generator=generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        progress(step + 1, steps, f"loss {losses[-1]:.4f}")
    network.eval()
    return losses
