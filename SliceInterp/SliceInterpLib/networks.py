"""The two view networks of cross-view slice interpolation (MONAI 2D UNets predicting residuals).

* axial view: the slice half-way between observed slices ``i`` and ``i + 1`` from
  ``2 * neighbours`` observed slices around the gap (frame interpolation);
* coronal and sagittal views (one shared network): a 2D image whose first axis is z,
  given as two channels (rows ``i`` and ``i + 1``), refined into the rows half-way
  between them (super-resolution along z). With ``planar_context`` c > 0 (2.5D) the
  network also sees the c parallel planes on each side of the image, two channels each.

With ``position_input`` (models trained since version 2 of the architecture) both also
take the position ``t`` of the new slice in its gap (0 = slice ``i``, 1 = slice ``i + 1``)
as one more channel, so any factor (x3, 5 mm -> 2 mm) is one pass of the networks;
older models predict only ``t = 0.5``.

Both predict a residual over linear interpolation (between the two nearest observed
slices, at ``t``) through a zero-initialised output layer, so an untrained network
gives exactly the classical answer and training only adds to it.
Intensities: :data:`INTENSITY`, stored in every model's metadata and checked when it is loaded.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Sequence

import torch
from monai.networks.nets import UNet
from torch import nn

from CTSynthesisCore.errors import UserInputError
from CTSynthesisCore.hounsfield import AIR_HU, STORED_MAX_HU

@dataclass(frozen=True)
class CrossViewIntensity:
    """The networks' intensity scale (version 1): HU clipped to [hu_min, hu_max], divided by ``scale``."""

    version: int = 1
    hu_min: float = AIR_HU
    hu_max: float = STORED_MAX_HU
    scale: float = 1000.0

    def to_network(self, hu: torch.Tensor) -> torch.Tensor:
        """HU -> the networks' intensity scale."""
        return hu.clamp(self.hu_min, self.hu_max) / self.scale

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def check(self, metadata: dict[str, Any]) -> None:
        """Refuse a model trained on another scale. Models saved before the scale was versioned describe version 1
        in words."""
        stored = metadata.get("intensity")
        if isinstance(stored, dict) and stored != self.to_dict():
            raise UserInputError(f"model '{metadata.get('name')}' uses intensity scale {stored}; this version runs "
                                 f"only {self.to_dict()}")


INTENSITY = CrossViewIntensity()


def check_view_weights(weights: Sequence[float]) -> None:
    """Refuse view weights (axial, coronal, sagittal) that are not three, are negative or are all 0."""
    if len(weights) != 3 or min(weights) < 0 or sum(weights) <= 0:
        raise ValueError(f"view weights need three weights >= 0, not all 0; got {list(weights)}")


@dataclass
class CrossViewConfig:
    """Architecture of both view networks."""

    channels: tuple[int, ...] = (16, 32, 64, 128)
    strides: tuple[int, ...] = (2, 2, 2)
    num_res_units: int = 1
    neighbours: int = 2  # observed slices on each side of a gap seen by the axial network
    planar_context: int = 0  # parallel planes on each side seen by the coronal/sagittal network (0: 2D)
    position_input: bool = True  # one more input channel: where in the gap the new slice lies (any factor)
    view_weights: tuple[float, ...] = (1 / 3, 1 / 3, 1 / 3)  # axial, coronal, sagittal: the new slice's weighted mean

    def __post_init__(self) -> None:
        check_view_weights(self.view_weights)

    @property
    def used_views(self) -> tuple[int, ...]:
        """The views (0 axial, 1 coronal, 2 sagittal) whose weight is above 0: the only ones run at inference."""
        return tuple(index for index, weight in enumerate(self.view_weights) if weight > 0)

    def with_channels(self, channels: Sequence[int]) -> "CrossViewConfig":
        """This config with ``channels`` per level and a x2 stride between levels."""
        return replace(self, channels=tuple(channels), strides=(2,) * (len(channels) - 1))

    @property
    def planar_planes(self) -> int:
        """Parallel planes the coronal/sagittal network sees: its image and ``planar_context`` on each side."""
        return 2 * self.planar_context + 1

    @property
    def size_multiple(self) -> int:
        return math.prod(self.strides)

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "CrossViewConfig":
        """The config stored in a model's metadata; models saved before ``position_input`` or ``view_weights``
        existed had none (no position input, equal weights)."""
        known = {f.name for f in fields(cls)}
        values = {"position_input": False, **values}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items() if k in known})


def _architecture(config: CrossViewConfig) -> tuple:
    """What widening keeps: the UNets' levels and the axial network's neighbours."""
    return config.channels, config.strides, config.num_res_units, config.neighbours


def _view_network(in_channels: int, config: CrossViewConfig) -> nn.Sequential:
    """A MONAI UNet and a zero-initialised 1x1 output head: the residual starts at exactly zero."""
    features = config.channels[0]
    head = nn.Conv2d(features, 1, kernel_size=1)
    nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)
    body = UNet(spatial_dims=2, in_channels=in_channels, out_channels=features, channels=config.channels,
                strides=config.strides, num_res_units=config.num_res_units, norm=None)
    return nn.Sequential(body, nn.PReLU(), head)


def _pad(batch: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    height, width = batch.shape[-2:]
    padding = (0, (-width) % multiple, 0, (-height) % multiple)
    if any(padding):
        batch = nn.functional.pad(batch, padding, mode="replicate")
    return batch, (height, width)


def _positions(position: torch.Tensor | None, count: int, like: torch.Tensor) -> torch.Tensor:
    """``count`` positions on ``like``'s device and type: the given ones, or 0.5 (half-way) for all."""
    if position is None:
        return torch.full((count,), 0.5, dtype=like.dtype, device=like.device)
    return position.to(like.device, like.dtype)


def _between(before: torch.Tensor, after: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Linear interpolation at ``t`` (bit-exact the mean of the two at ``t = 0.5``)."""
    return (1 - t) * before + t * after


class CrossViewNet(nn.Module):
    """The axial frame-interpolation network and the shared coronal/sagittal super-resolution network."""

    def __init__(self, config: CrossViewConfig | None = None) -> None:
        super().__init__()
        self.config = config or CrossViewConfig()
        extra = int(self.config.position_input)
        self.axial = _view_network(2 * self.config.neighbours + extra, self.config)
        self.planar = _view_network(2 * self.config.planar_planes + extra, self.config)

    def _residual(self, network: nn.Module, inputs: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
        padded, (height, width) = _pad(inputs, self.config.size_multiple)
        if not self.training:  # channels-last convolutions are about 1.5x faster on CPU
            padded = padded.contiguous(memory_format=torch.channels_last)
        return base + network(padded)[:, 0, :height, :width]

    def _with_position(self, inputs: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
        """``inputs`` (B, C, H, W) and, for a position model, the channel ``2 t - 1`` (zero half-way); ``position``
        broadcasts to (B, 1, H, W). A model without position input refuses any ``t`` but 0.5."""
        if not self.config.position_input:
            if not bool((position == 0.5).all()):
                raise ValueError("this model predicts only slices half-way across a gap (no position input)")
            return inputs
        channel = (2 * position - 1).to(inputs.dtype).expand(inputs.shape[0], 1, *inputs.shape[2:])
        return torch.cat([inputs, channel], dim=1)

    def axial_between(self, neighbours: torch.Tensor, position: torch.Tensor | None = None) -> torch.Tensor:
        """(B, 2n, H, W) observed slices around each gap -> (B, H, W) slices at ``position`` (B,) across each gap,
        0 to 1 (default: half-way)."""
        n = self.config.neighbours
        t = _positions(position, neighbours.shape[0], neighbours).view(-1, 1, 1, 1)
        base = _between(neighbours[:, n - 1:n], neighbours[:, n:n + 1], t)[:, 0]
        return self._residual(self.axial, self._with_position(neighbours, t), base)

    def planar_between(self, images: torch.Tensor, position: torch.Tensor | None = None) -> torch.Tensor:
        """(B, Z, W) images with z first, or (B, P, Z, W) stacks of P parallel planes around each image (P = 2c + 1
        for ``planar_context`` c, the image in the middle) -> (B, Z - 1, W) rows at ``position`` (Z - 1,) across
        each gap between consecutive rows of the middle plane, 0 to 1 (default: half-way)."""
        stacks = images[:, None] if images.dim() == 3 else images
        if stacks.shape[1] != self.config.planar_planes:
            raise ValueError(f"this network sees {self.config.planar_planes} parallel planes, got {stacks.shape[1]}")
        pairs = torch.stack([stacks[:, :, :-1], stacks[:, :, 1:]], dim=2).flatten(1, 2)  # plane-major: (B, 2P, ...)
        middle = 2 * self.config.planar_context
        t = _positions(position, stacks.shape[2] - 1, stacks).view(1, 1, -1, 1)
        base = _between(pairs[:, middle:middle + 1], pairs[:, middle + 1:middle + 2], t)[:, 0]
        return self._residual(self.planar, self._with_position(pairs, t), base)

    def _source_channels(self, key: str, source: CrossViewConfig) -> list[int]:
        """Where each input channel of ``source``'s network lands in this network's input layer ``key``: observed
        slices (axial) or the planes' rows (planar, the source's planes in the middle), then the position channel."""
        if key.startswith("axial"):
            observed, position = list(range(2 * source.neighbours)), 2 * self.config.neighbours
        else:
            first = 2 * (self.config.planar_context - source.planar_context)
            observed, position = list(range(first, first + 2 * source.planar_planes)), 2 * self.config.planar_planes
        return observed + ([position] if source.position_input else [])

    def load_widened(self, state: dict[str, torch.Tensor], source: CrossViewConfig) -> None:
        """Load the weights of a network of config ``source`` that sees less: no position input (older models) or
        fewer parallel planes (2D into 2.5D). The input layers get zero weights on the new channels, so the network
        starts as the source: exactly half-way (position channel 0) and at every position with the source's residual
        over the new base."""
        if source.position_input and not self.config.position_input:
            raise ValueError("a position model does not widen into a model without position input")
        if source.planar_context > self.config.planar_context or _architecture(source) != _architecture(self.config):
            raise ValueError(f"a network of {source.to_dict()} does not widen into one of {self.config.to_dict()}")
        own = self.state_dict()
        for key, value in state.items():
            target = own[key]
            if value.shape != target.shape:
                channels = self._source_channels(key, source)
                if (value.dim() < 2 or value.shape[0] != target.shape[0] or value.shape[2:] != target.shape[2:]
                        or value.shape[1] != len(channels) or max(channels) >= target.shape[1]):
                    raise ValueError(f"{key}: {tuple(value.shape)} does not widen to {tuple(target.shape)}")
                grown = value.new_zeros(target.shape)
                grown[:, channels] = value
                value = grown
            own[key] = value
        self.load_state_dict(own)

    def fused_for_inference(self) -> "CrossViewNet":
        """This network with every single-slope PReLU replaced by the equal LeakyReLU (about 1.3x faster on CPU)."""
        for module in self.modules():
            for name, child in module.named_children():
                if isinstance(child, nn.PReLU) and child.weight.numel() == 1:
                    setattr(module, name, nn.LeakyReLU(child.weight.item(), inplace=True))
        return self


def widened(network: CrossViewNet, planar_context: int | None = None) -> CrossViewNet:
    """``network`` as a position model seeing ``planar_context`` parallel planes on each side (default: its own),
    starting as it (:meth:`CrossViewNet.load_widened`); ``network`` itself when it is one already."""
    source = network.config
    context = source.planar_context if planar_context is None else planar_context
    if context < source.planar_context:
        raise ValueError(f"the network sees {source.planar_context} parallel planes on each side; it cannot be "
                         f"narrowed to {context}")
    if source.position_input and context == source.planar_context:
        return network
    wider = CrossViewNet(replace(source, position_input=True, planar_context=context))
    wider.load_widened(network.state_dict(), source)
    return wider.train(network.training)
