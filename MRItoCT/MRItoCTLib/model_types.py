"""The model types, one registry entry each.

A :class:`ModelKind` says how a saved network is rebuilt and how it makes CT: ``diffusion`` (a
:class:`ConditionalDenoiser`, sampled by any sampler, Monte Carlo gives a spread), ``residual`` (a
regression mean plus a sampled residual, :mod:`~MRItoCTLib.residual`) or ``regression`` (the CNN and
GAN baselines: one forward pass). A :class:`ModelType` is what ``mritoct train --model``
trains: its kind, its fixed network arguments, its loss, and whether training keeps an EMA copy or a
discriminator. Adding a type is one entry in :data:`MODEL_TYPES` (plus its loss, if new).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import Tensor, nn

from CTSynthesisCore.errors import UserInputError
from CTSynthesisCore.progress import CancelToken

from .baselines import RegressionConfig, RegressionNet, adversarial_loss
from .intensity import DEFAULT_INTENSITY, IntensityMapping
from .network import ConditionalDenoiser, DenoiserConfig, diffusion_loss
from .residual import ResidualConfig, ResidualDiffusion
from .samplers import NoiseGenerator, StepCallback, get_sampler


@dataclass
class Draw:
    """What one batched draw needs besides the network and the condition."""

    sampler: str
    steps: int
    options: dict[str, Any]
    generator: NoiseGenerator = None
    callback: StepCallback | None = None
    cancel: CancelToken | None = None
    copies: int = 1  # the condition is this many copies of one batch stacked (Monte-Carlo samples drawn together)


def sample_with_sampler(run: Callable[..., Tensor], network: ConditionalDenoiser, condition: Tensor,
                        draw: Draw) -> tuple[Tensor, int]:
    """One sample per condition from the chosen sampler; ``run`` is the (accelerated) network to call."""
    result = get_sampler(draw.sampler)(run, condition, network.process, steps=draw.steps, generator=draw.generator,
                                       callback=draw.callback, cancel=draw.cancel, **draw.options)
    return result.sample, result.nfe


def mean_per_distinct_copy(network: ResidualDiffusion, condition: Tensor, copies: int) -> Tensor:
    """The regression's mean of each of the ``copies`` stacked copies in ``condition``, computed once per distinct
    copy (Monte-Carlo copies repeat the MRI as is and each of its mirrorings and shifts)."""
    blocks, means = condition.chunk(copies), []
    for index, block in enumerate(blocks):
        same = next((earlier for earlier in range(index) if torch.equal(blocks[earlier], block)), None)
        means.append(means[same] if same is not None else network.mean(block))
    return torch.cat(means)


def sample_residual(run: Callable[..., Tensor], network: ResidualDiffusion, condition: Tensor,
                    draw: Draw) -> tuple[Tensor, int]:
    """Residual diffusion: the regression's mean plus one sampled residual per condition."""
    mean = mean_per_distinct_copy(network, condition, draw.copies)
    residual, nfe = sample_with_sampler(run, network, network.extended_condition(condition, mean), draw)
    return network.ct_from_residual(mean, residual), nfe


def predict_once(run: Callable[..., Tensor], network: nn.Module, condition: Tensor, draw: Draw) -> tuple[Tensor, int]:
    """The deterministic baselines: one forward pass, clamped to [-1, 1]."""
    return run(condition).clamp(-1.0, 1.0), 1


def probe_denoiser(run: Callable[..., Tensor], inputs: Tensor) -> Tensor:
    return run(inputs[:, :1], torch.full((inputs.shape[0],), 0.5, device=inputs.device), inputs)


def probe_residual(run: Callable[..., Tensor], inputs: Tensor) -> Tensor:
    return probe_denoiser(run, torch.cat([inputs, inputs[:, :1]], dim=1))


def probe_regression(run: Callable[..., Tensor], inputs: Tensor) -> Tensor:
    return run(inputs)


def denoiser_channel_options(channels: tuple[int, ...]) -> dict[str, Any]:
    return {"channels": channels, "attention_levels": tuple([False] * (len(channels) - 1) + [True]),
            "norm_num_groups": min(16, min(channels)), "num_head_channels": min(32, channels[-1])}


def regression_channel_options(channels: tuple[int, ...]) -> dict[str, Any]:
    return {"channels": channels, "strides": tuple([2] * (len(channels) - 1))}


def construct_denoiser(config: DenoiserConfig, intensity: IntensityMapping, for_synthesis: bool) -> nn.Module:
    """A denoiser built for synthesis clips x0 to [-1, 1]; its intensities are the pipeline's business."""
    return ConditionalDenoiser(config, clip_x0=for_synthesis)


def construct_residual(config: ResidualConfig, intensity: IntensityMapping, for_synthesis: bool) -> nn.Module:
    return ResidualDiffusion(config, intensity, clip_x0=for_synthesis)


def construct_regression(config: RegressionConfig, intensity: IntensityMapping, for_synthesis: bool) -> nn.Module:
    """The CNN/GAN network predicts a difference from a CT number, placed on its mapping's scale."""
    return RegressionNet(config, intensity)


@dataclass(frozen=True)
class ModelKind:
    """How a saved network of this kind is rebuilt, probed for memory and turned into CT samples."""

    name: str
    config_class: type
    network_class: type
    stochastic: bool  # sampled by a sampler (Monte-Carlo spread) or deterministic
    draw: Callable[[Callable[..., Tensor], nn.Module, Tensor, Draw], tuple[Tensor, int]]
    probe: Callable[[Callable[..., Tensor], Tensor], Tensor]
    channel_options: Callable[[tuple[int, ...]], dict[str, Any]]  # network arguments implied by --channels
    construct: Callable[[Any, IntensityMapping, bool], nn.Module]  # (config, intensity, for synthesis) -> network
    needs_mean_model: bool = False  # trained on top of a frozen regression model (``--mean-model``)

    def build(self, config: Any, intensity: IntensityMapping = DEFAULT_INTENSITY, for_synthesis: bool = False) -> nn.Module:
        """The network of a config, for the intensity mapping it is trained with and whether it is built for synthesis."""
        return self.construct(config, intensity, for_synthesis)


KINDS: dict[str, ModelKind] = {kind.name: kind for kind in [
    ModelKind("diffusion", DenoiserConfig, ConditionalDenoiser, True, sample_with_sampler, probe_denoiser,
              denoiser_channel_options, construct_denoiser),
    ModelKind("residual", ResidualConfig, ResidualDiffusion, True, sample_residual, probe_residual,
              denoiser_channel_options, construct_residual, needs_mean_model=True),
    ModelKind("regression", RegressionConfig, RegressionNet, False, predict_once, probe_regression,
              regression_channel_options, construct_regression),
]}


def model_kind(name: str) -> ModelKind:
    if name not in KINDS:
        raise UserInputError(f"unknown model kind '{name}' (one of {', '.join(KINDS)})")
    return KINDS[name]


def kind_of(network: nn.Module) -> ModelKind:
    """The kind of a network object (its exact class: a residual model is also a denoiser)."""
    return next(kind for kind in KINDS.values() if type(network) is kind.network_class)


@dataclass
class LossInputs:
    """One training batch and the modules a loss may call."""

    network: nn.Module  # the module being trained
    trained: nn.Module  # what to call: ``network`` or its DistributedDataParallel wrapper
    ct: Tensor
    condition: Tensor
    generator: torch.Generator | None = None
    discriminator: nn.Module | None = None
    gan_l1_weight: float = 100.0
    bone_weight: float = 1.0  # the L1 weight of voxels whose true CT is bone (1: plain L1)
    bone_unit: float = 1.0  # where bone starts on the [-1, 1] CT scale


def denoising_loss(batch: LossInputs) -> tuple[Tensor, Tensor | None]:
    """Denoising score matching with Min-SNR-5 weighting (no prediction to hand to a discriminator)."""
    return diffusion_loss(batch.network, batch.ct, batch.condition, generator=batch.generator,
                          wrapped=batch.trained), None


def residual_denoising_loss(batch: LossInputs) -> tuple[Tensor, Tensor | None]:
    """The same denoising loss on the scaled residual of the frozen mean network, conditioned on MRI and mean."""
    network = batch.network
    mean = network.mean(batch.condition)
    return diffusion_loss(network, network.residual_target(batch.ct, mean),
                          network.extended_condition(batch.condition, mean), generator=batch.generator,
                          wrapped=batch.trained), None


def l1_loss(batch: LossInputs) -> tuple[Tensor, Tensor | None]:
    """The CNN baseline: L1 between the predicted and the true CT, bone voxels weighted ``bone_weight`` times
    (a weighted median: where the MRI leaves bone and soft tissue equally likely, bone wins)."""
    prediction = batch.trained(batch.condition)
    weights = torch.where(batch.ct > batch.bone_unit, batch.bone_weight, 1.0)
    return (weights * (prediction - batch.ct).abs()).sum() / weights.sum(), prediction


def pix2pix_loss(batch: LossInputs) -> tuple[Tensor, Tensor | None]:
    """pix2pix's generator: LSGAN term from the discriminator plus weighted L1."""
    l1, prediction = l1_loss(batch)
    fake_logits = batch.discriminator(torch.cat([batch.condition, prediction], 1))[-1]
    return adversarial_loss(fake_logits, True) + batch.gan_l1_weight * l1, prediction


@dataclass(frozen=True)
class ModelType:
    """What ``mritoct train --model NAME`` trains."""

    name: str
    kind: str
    description: str
    network_defaults: dict[str, Any]  # fixed network arguments of this type (noise process, parameterisation)
    loss: Callable[[LossInputs], tuple[Tensor, Tensor | None]]
    ema: bool = False  # validate and save an exponential moving average of the weights
    adversarial: bool = False  # train a PatchGAN discriminator alongside

    def build(self, context_slices: int, channels: tuple[int, ...] | None = None,
              network_options: dict[str, Any] | None = None, intensity: IntensityMapping = DEFAULT_INTENSITY) -> nn.Module:
        """A freshly initialised network of this type (for the intensity mapping it will be trained with)."""
        kind = KINDS[self.kind]
        arguments = dict(context_slices=context_slices, **self.network_defaults, **(network_options or {}))
        if channels:
            for key, value in kind.channel_options(tuple(channels)).items():
                arguments[key] = value if key in ("channels", "strides") else arguments.get(key, value)
        return kind.build(kind.config_class(**arguments), intensity)


MODEL_TYPES: dict[str, ModelType] = {model_type.name: model_type for model_type in [
    ModelType("ddpm", "diffusion", "VP/DDPM diffusion (v-prediction, Min-SNR-5)", {"process": "vp", "prediction": "v"},
              denoising_loss, ema=True),
    ModelType("score", "diffusion", "VE score model (noise prediction = DSM)", {"process": "ve", "prediction": "eps"},
              denoising_loss, ema=True),
    ModelType("residual", "residual", "regression mean + VP diffusion of its residual (CorrDiff-style)",
              {"process": "vp", "prediction": "v"}, residual_denoising_loss, ema=True),
    # EMA: on real T2 images a CNN's reading of ambiguous regions (urine or marrow) swings between checkpoints
    ModelType("cnn", "regression", "UNet regression, L1 (CNN baseline)", {}, l1_loss, ema=True),
    ModelType("gan", "regression", "pix2pix: UNet generator + PatchGAN, L1 + LSGAN", {}, pix2pix_loss, adversarial=True),
]}


def model_type(name: str) -> ModelType:
    if name not in MODEL_TYPES:
        raise UserInputError(f"unknown model type '{name}' (choose from {', '.join(MODEL_TYPES)})")
    return MODEL_TYPES[name]
