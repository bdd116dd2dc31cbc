"""The paper's baselines: a UNet regression (CNN, L1) and a pix2pix GAN (same UNet + PatchGAN), MONAI networks."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn

from .intensity import DEFAULT_INTENSITY, IntensityMapping


UPSAMPLING = ("resize", "transposed")


@dataclass
class RegressionConfig:
    """A MONAI UNet mapping MRI (with context slices) straight to CT in [-1, 1]."""

    context_slices: int = 1
    channels: tuple[int, ...] = (32, 64, 128, 128)
    strides: tuple[int, ...] = (2, 2, 2)
    num_res_units: int = 1
    norm: str = "batch"  # running statistics: a model trained on crops also works on whole slices
    centre_hu: float | None = 0.0  # the network predicts the difference from this CT number (None: plain output)
    upsample: str = "resize"  # "resize": interpolation + convolution (MRItoCTLib.unet); "transposed": MONAI's own

    @property
    def condition_channels(self) -> int:
        return 1 + 2 * self.context_slices

    @property
    def size_multiple(self) -> int:
        multiple = 1
        for stride in self.strides:
            multiple *= stride
        return multiple

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "RegressionConfig":
        known = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items() if k in cls.__dataclass_fields__}
        known.setdefault("norm", "instance")  # models saved before these fields existed
        known.setdefault("centre_hu", None)
        known.setdefault("upsample", "transposed")
        return cls(**known)


class RegressionNet(nn.Module):
    """CT = centre + UNet(MRI) (a difference from water by default); clamped to [-1, 1] at inference."""

    def __init__(self, config: RegressionConfig, intensity: IntensityMapping = DEFAULT_INTENSITY) -> None:
        super().__init__()
        from monai.networks.nets import UNet

        from .unet import ResizeConvUNet

        if config.upsample not in UPSAMPLING:
            raise ValueError(f"unknown upsampling '{config.upsample}' (choose from {', '.join(UPSAMPLING)})")
        self.config = config
        self.centre = None if config.centre_hu is None else float(intensity.hu_to_unit(config.centre_hu))
        network = ResizeConvUNet if config.upsample == "resize" else UNet
        self.unet = network(spatial_dims=2, in_channels=config.condition_channels, out_channels=1,
                            channels=config.channels, strides=config.strides, num_res_units=config.num_res_units,
                            norm=config.norm)

    def forward(self, condition: Tensor) -> Tensor:
        output = self.unet(condition)
        return output if self.centre is None else output + self.centre


def patch_discriminator(condition_channels: int) -> nn.Module:
    """pix2pix's 70x70-style PatchGAN on (MRI condition, CT) pairs (MONAI ``PatchDiscriminator``)."""
    from monai.networks.nets import PatchDiscriminator

    return PatchDiscriminator(spatial_dims=2, num_layers_d=3, channels=32, in_channels=condition_channels + 1,
                              out_channels=1, norm="INSTANCE")


def adversarial_loss(logits: Tensor, real: bool) -> Tensor:
    """Least-squares GAN loss (stable for small batches)."""
    target = torch.ones_like(logits) if real else torch.zeros_like(logits)
    return torch.mean((logits - target) ** 2)
