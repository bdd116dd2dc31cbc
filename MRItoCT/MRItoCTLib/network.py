"""The conditional denoiser: MONAI ``DiffusionModelUNet`` with the MRI as extra input channels.

The network's output is read as noise (``eps``), clean image (``x0``) or velocity
(``v``) prediction; :class:`ConditionalDenoiser` always returns ``eps`` so every
sampler works with every parameterization and both noise processes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from .processes import NoiseProcess, make_process

PREDICTIONS = ("eps", "x0", "v")


@dataclass
class DenoiserConfig:
    """Architecture and parameterization of a conditional denoiser (stored in model metadata)."""

    context_slices: int = 0  # neighbouring MRI slices on each side (2.5D context)
    channels: tuple[int, ...] = (32, 64, 64)
    num_res_blocks: int = 1
    attention_levels: tuple[bool, ...] = (False, False, True)
    norm_num_groups: int = 16
    num_head_channels: int = 32
    prediction: str = "v"
    process: str = "vp"
    process_options: dict[str, float] = field(default_factory=dict)

    @property
    def condition_channels(self) -> int:
        return 1 + 2 * self.context_slices

    @property
    def unet_condition_channels(self) -> int:
        """Condition channels the UNet itself takes (the MRI stack, plus what a subclass adds)."""
        return self.condition_channels

    @property
    def size_multiple(self) -> int:
        """Image sizes must be a multiple of this (one halving per level after the first)."""
        return 2 ** (len(self.channels) - 1)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "DenoiserConfig":
        known = {k: v for k, v in values.items() if k in cls.__dataclass_fields__}
        for key in ("channels", "attention_levels"):
            if key in known:
                known[key] = tuple(known[key])
        return cls(**known)


def build_unet(config: DenoiserConfig, out_channels: int = 1, time_conditioned: bool = True) -> nn.Module:
    """MONAI DiffusionModelUNet taking the noisy CT plus the MRI condition channels."""
    from monai.networks.nets import DiffusionModelUNet

    return DiffusionModelUNet(
        spatial_dims=2,
        in_channels=(1 if time_conditioned else 0) + config.unet_condition_channels,
        out_channels=out_channels,
        channels=config.channels,
        attention_levels=config.attention_levels,
        num_res_blocks=config.num_res_blocks,
        norm_num_groups=config.norm_num_groups,
        num_head_channels=config.num_head_channels,
        use_flash_attention=True,  # torch's scaled_dot_product_attention: no n^2 softmax tensor in memory
    )


class ConditionalDenoiser(nn.Module):
    """Predicts eps from (noisy CT x_t, time t in [0, 1], MRI condition)."""

    def __init__(self, config: DenoiserConfig, clip_x0: bool = False) -> None:
        super().__init__()
        if config.prediction not in PREDICTIONS:
            raise ValueError(f"unknown prediction '{config.prediction}' ({', '.join(PREDICTIONS)})")
        if config.prediction == "v" and config.process != "vp":
            raise ValueError("v-prediction needs the VP process")
        self.config = config
        self.process: NoiseProcess = make_process(config.process, **config.process_options)
        self.unet = build_unet(config)
        self.clip_x0 = clip_x0  # fixed when built: a model loaded for synthesis clips x0 to [-1, 1], where CT lives

    def network_output(self, x: Tensor, t: Tensor, condition: Tensor) -> Tensor:
        """Raw network output for input scaled to unit variance and time scaled to [0, 1000]."""
        alpha, sigma = self._alpha_sigma(t, x)
        scaled = x / torch.sqrt(alpha**2 + sigma**2)
        return self.unet(torch.cat([scaled, condition.to(x.dtype)], dim=1), timesteps=t * 1000.0)

    def _alpha_sigma(self, t: Tensor, like: Tensor) -> tuple[Tensor, Tensor]:
        alpha, sigma = self.process.alpha_sigma(t.float())
        shape = (-1,) + (1,) * (like.dim() - 1)
        return alpha.reshape(shape).to(like.dtype), sigma.reshape(shape).to(like.dtype)

    def x0_and_eps(self, output: Tensor, x: Tensor, t: Tensor, clip: bool | None = None) -> tuple[Tensor, Tensor]:
        """Clean-image and noise estimates from a network output; x0 clipped to [-1, 1] with ``clip`` (default:
        as the network was built)."""
        alpha, sigma = self._alpha_sigma(t, x)
        if self.config.prediction == "eps":
            eps = output
            x0 = (x - sigma * eps) / alpha
        elif self.config.prediction == "x0":
            x0 = output
            eps = (x - alpha * x0) / sigma
        else:
            x0 = alpha * x - sigma * output
            eps = sigma * x + alpha * output
        if self.clip_x0 if clip is None else clip:
            x0 = x0.clamp(-1.0, 1.0)
            eps = (x - alpha * x0) / sigma
        return x0, eps

    def forward(self, x: Tensor, t: Tensor, condition: Tensor, raw: bool = False) -> Tensor:
        """The noise estimate eps, or with ``raw`` the network output (so DDP can wrap training calls)."""
        output = self.network_output(x, t, condition)
        return output if raw else self.x0_and_eps(output, x, t)[1]

    def clipped_eps(self, x: Tensor, t: Tensor, condition: Tensor) -> Tensor:
        """The noise estimate with x0 clipped to [-1, 1], whatever the network was built with (validation samples)."""
        return self.x0_and_eps(self.network_output(x, t, condition), x, t, clip=True)[1]

    def training_target(self, x0: Tensor, eps: Tensor, t: Tensor) -> Tensor:
        """What the network should output for this (x0, eps, t)."""
        if self.config.prediction == "eps":
            return eps
        if self.config.prediction == "x0":
            return x0
        alpha, sigma = self._alpha_sigma(t, x0)
        return alpha * eps - sigma * x0


def diffusion_loss(model: ConditionalDenoiser, ct: Tensor, condition: Tensor, generator: torch.Generator | None = None,
                   min_snr_gamma: float | None = 5.0, wrapped: nn.Module | None = None) -> Tensor:
    """Denoising loss at uniformly drawn times (noise prediction = denoising score matching).

    With ``min_snr_gamma`` the per-sample weight is the Min-SNR-gamma weighting
    (Hang et al. 2023) expressed for the chosen parameterization. ``wrapped`` is the
    module to call (for example a DistributedDataParallel wrapper of ``model``).
    """
    process = model.process
    batch = ct.shape[0]
    t = torch.rand(batch, device=ct.device, generator=generator) * (1.0 - process.t_min) + process.t_min
    eps = torch.randn(ct.shape, device=ct.device, generator=generator, dtype=ct.dtype)
    alpha, sigma = model._alpha_sigma(t, ct)
    noisy = alpha * ct + sigma * eps
    output = (wrapped or model)(noisy, t, condition, raw=True)
    error = ((output - model.training_target(ct, eps, t)) ** 2).mean(dim=tuple(range(1, ct.dim())))
    if min_snr_gamma is None:
        return error.mean()
    snr = (alpha / sigma).flatten() ** 2
    clipped = torch.clamp(snr, max=min_snr_gamma)
    weight = {"eps": clipped / snr, "x0": clipped, "v": clipped / (snr + 1)}[model.config.prediction]
    return (weight * error).mean()
