"""Self-supervised learning of the cross-view networks from the volumes themselves (Fang et al. 2022).

Every step takes a random block of observed slices from a volume and adds up to three losses:

* restoration (given level): drop every other slice of the block and ask each of
  the three views to restore the dropped slices (squared error against the observed
  slices, or L1); a model with position input keeps every 2nd, 3rd or 4th slice and
  restores one slice between, at its position in the gap;
* mutual distillation (``distill_levels`` finer levels, no ground truth): each view
  predicts the slices half-way between the block's slices (x2, then x4 from the x2
  result, ...) and learns from the mean of the other two views, only where the three
  agree best (the ``distill_keep`` fraction with the smallest spread, the top-k rule
  of the paper's code);
* in-plane restoration (``inplane_weight``, SMORE-style, Zhao et al. 2020): axial slices,
  whose in-plane pixels are finer than the slice spacing, are averaged along one in-plane
  axis into thick rows like the slices, and the coronal/sagittal network restores every
  other row: training pairs at the volume's native fine scale.

A block may first be rescaled in HU and given noise (``augment_contrast``, ``augment_noise_hu``), as other
scanners would give it. No target ever comes from outside the given volumes, so the same loop trains the shipped
model (``research.training``) and adapts it to a user's volume at test time (:func:`adapt`).
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, replace
from typing import Callable, Sequence

import numpy as np
import SimpleITK as sitk
import torch

from CTSynthesisCore.progress import CancelToken, ProgressCallback, no_progress

from .crossview import interleave, plane_stacks, view_predictions
from .networks import INTENSITY, CrossViewNet

@dataclass
class TrainConfig:
    """Optimisation settings (defaults: the shipped model's run)."""

    steps: int = 3000
    max_minutes: float | None = None
    learning_rate: float = 1e-3
    block_slices: int = 24
    block_size: int = 96
    restoration_weight: float = 1.0  # 0: no restoration steps (test-time adaptation trains in-plane only)
    distill_weight: float = 0.5
    distill_keep: float = 0.25
    distill_from: float = 0.25  # fraction of the steps trained on restoration alone
    squared_error: bool = True  # restoration loss: squared error (the PSNR objective) or L1
    distill_levels: int = 2  # finer levels distilled: 0 = none, 1 = x2 above the given slices, 2 = also x4
    inplane_weight: float = 0.0  # weight of in-plane (SMORE-style) restoration; 0 = off (the shipped model's run)
    inplane_images: int = 8  # axial slices of the block degraded into thick rows per step
    inplane_scale: str = "volume"  # row thickness: "volume" (its own slice spacing, per level) or "random" (2-8 px)
    inplane_profile: str = "box"  # slice profile: "box" (as thick as the spacing) or "random" (1 px .. the spacing)
    gap_strides: tuple[int, ...] = (2, 3, 4)  # position models: every k-th slice kept, one slice between restored
    augment_contrast: float = 0.0  # each block's HU scaled about water by a factor in [1 - this, 1 + this]; 0 = off
    augment_noise_hu: float = 0.0  # Gaussian noise of a standard deviation in [0, this] HU added to each block; 0 = off
    validate_every: int = 250
    seed: int = 0


@dataclass
class TrainingVolume:
    """A volume on the networks' scale, (Z, Y, X), with its voxel spacing (x, y, z) in mm."""

    name: str
    values: torch.Tensor
    spacing: tuple[float, float, float]

    @classmethod
    def from_image(cls, image: sitk.Image, name: str = "volume") -> "TrainingVolume":
        values = INTENSITY.to_network(torch.from_numpy(sitk.GetArrayFromImage(image).astype(np.float32)))
        return cls(name, values, tuple(image.GetSpacing()))

    @property
    def nearly_isotropic(self) -> bool:
        return max(self.spacing) / min(self.spacing) < 1.2


def random_block(volume: TrainingVolume, config: TrainConfig, rng: np.random.Generator) -> torch.Tensor:
    """A random (Z, Y, X) block with random flips and in-plane transposition.

    A nearly isotropic volume may also lend another axis as its slice axis.
    """
    values = volume.values
    if volume.nearly_isotropic:
        values = values.permute(*rng.permutation(3))
    depth = min(config.block_slices, values.shape[0])
    height, width = (min(config.block_size, size) for size in values.shape[1:])
    z, y, x = (int(rng.integers(0, size - crop + 1)) for size, crop in zip(values.shape, (depth, height, width)))
    block = values[z:z + depth, y:y + height, x:x + width]
    flips = [axis for axis in range(3) if rng.random() < 0.5]
    if flips:
        block = block.flip(flips)
    if rng.random() < 0.5:
        block = block.transpose(1, 2)
    return block.contiguous()


def augmented_block(block: torch.Tensor, config: TrainConfig, rng: np.random.Generator) -> torch.Tensor:
    """The block as another scanner might have given it (``config.augment_contrast``, ``config.augment_noise_hu``):
    its HU scaled about water (calibration and reconstruction differ) and Gaussian noise of a random level added
    (dose and kernel differ), clipped to the networks' range as inference clips its input. Inputs and targets both
    come from the augmented block. Without augmentation the block and the random stream are unchanged."""
    if config.augment_contrast <= 0 and config.augment_noise_hu <= 0:
        return block
    factor = 1.0 + rng.uniform(-config.augment_contrast, config.augment_contrast)
    noise_std = rng.uniform(0.0, config.augment_noise_hu) / INTENSITY.scale
    generator = torch.Generator().manual_seed(int(rng.integers(2**31)))
    noisy = block * factor + noise_std * torch.randn(block.shape, generator=generator, dtype=block.dtype)
    return noisy.clamp(INTENSITY.hu_min / INTENSITY.scale, INTENSITY.hu_max / INTENSITY.scale)


def split_slices(values: torch.Tensor, stride: int = 2, offset: int = 1, phase: int = 0
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """The kept slices ``values[phase::stride]`` and, in each gap between them, the slice ``offset`` after the kept
    one (at ``offset / stride`` across the gap; the default drops every other slice)."""
    coarse = values[phase::stride]
    return coarse, values[phase + offset::stride][: coarse.shape[0] - 1]


def gap_positions(count: int, stride: int, offset: int, like: torch.Tensor) -> torch.Tensor:
    """The position ``offset / stride`` for ``count`` gaps."""
    return torch.full((count,), offset / stride, dtype=like.dtype, device=like.device)


def restoration_loss(network: CrossViewNet, block: torch.Tensor, phase: int = 0, squared: bool = False,
                     stride: int = 2, offset: int = 1) -> torch.Tensor:
    """L1 (or squared) error of the three views restoring the slices ``offset`` after each of ``block[phase::stride]``."""
    coarse, truth = split_slices(block, stride, offset, phase)
    views = view_predictions(network, coarse, position=gap_positions(truth.shape[0], stride, offset, block))
    error = views - truth
    return error.square().mean() if squared else error.abs().mean()


def restoration_gap(network: CrossViewNet, config: TrainConfig, depth: int, rng: np.random.Generator
                    ) -> tuple[int, int]:
    """(stride, offset) of one restoration step: every other slice for a model without position input, else a stride
    from ``config.gap_strides`` that leaves at least two kept slices in ``depth``, and any slice between."""
    strides = [s for s in config.gap_strides if 2 * s < depth] if network.config.position_input else []
    if not strides:
        return 2, 1
    stride = int(strides[int(rng.integers(len(strides)))])
    return stride, int(rng.integers(1, stride))


INPLANE_SCALES = ("volume", "random")
INPLANE_PROFILES = ("box", "random")
MAX_RANDOM_THICKNESS = 8  # pixels: 6.4 mm slices from a 0.8 mm grid, the thickest clinical slices


@dataclass(frozen=True)
class RowSampling:
    """How one in-plane step turns axial images into rows: a row every ``step`` pixels, each the mean of ``width``
    pixels (its slice profile); every ``stride``-th row is kept (slice spacing ``stride * step`` pixels) and the row
    ``offset`` after each kept one restored."""

    step: int
    width: int
    stride: int = 2
    offset: int = 1


def thick_rows(images: torch.Tensor, step: int, width: int) -> torch.Tensor:
    """(B, Y, X) images -> (B, R, X): one row every ``step`` pixels, each the mean of ``width`` pixels (a box slice
    profile: as wide as the slice spacing in a thick reconstruction, 1 pixel for thin slices spaced apart)."""
    return torch.nn.functional.avg_pool2d(images[:, None], kernel_size=(width, 1), stride=(step, 1))[:, 0]


def inplane_rows(spacing: Sequence[float], config: TrainConfig, rng: np.random.Generator,
                 position_input: bool = False) -> RowSampling:
    """The rows of one in-plane step, as ``config.inplane_scale`` and ``config.inplane_profile`` ask: slices as far
    apart as the volume's own (at a random level: the network serves every level) or a random spacing up to
    :data:`MAX_RANDOM_THICKNESS` pixels; a box profile as wide as the spacing, or a random width from one pixel to
    it. A position model also restores rows at other positions than half-way (``config.gap_strides``)."""
    stride = int(rng.choice(config.gap_strides)) if position_input else 2
    if config.inplane_scale == "random":
        step = int(rng.integers(1, MAX_RANDOM_THICKNESS // stride + 1))
    else:
        level = int(rng.integers(max(1, config.distill_levels)))
        step = max(1, round(spacing[2] / min(spacing[:2]) / 2**level / stride))
    width = int(rng.integers(1, stride * step + 1)) if config.inplane_profile == "random" else stride * step
    offset = int(rng.integers(1, stride)) if stride > 2 else 1
    return RowSampling(step, width, stride, offset)


def inplane_restoration_loss(network: CrossViewNet, block: torch.Tensor, rows: RowSampling, images: int,
                             rng: np.random.Generator, squared: bool = False) -> torch.Tensor:
    """Axial slices of ``block`` made into rows (:func:`thick_rows`), and the coronal/sagittal network asked to
    restore the dropped rows from the rows kept around them (L1, or squared error). A 2.5D network sees the
    neighbouring axial slices of each as its parallel planes."""
    chosen = np.sort(rng.choice(block.shape[0], size=min(images, block.shape[0]), replace=False))
    context = network.config.planar_context
    slices = plane_stacks(block, torch.from_numpy(chosen), 0, context)  # (B, P, Y, X)
    if rng.random() < 0.5:
        slices = slices.transpose(2, 3)
    made = thick_rows(slices.flatten(0, 1), rows.step, rows.width)
    made = made.view(*slices.shape[:2], *made.shape[1:]).permute(2, 0, 1, 3)  # (R, B, P, X): rows first
    coarse, truth = split_slices(made, rows.stride, rows.offset)
    position = gap_positions(truth.shape[0], rows.stride, rows.offset, block)
    error = network.planar_between(coarse.permute(1, 2, 0, 3), position) - truth[:, :, context].transpose(0, 1)
    return error.square().mean() if squared else error.abs().mean()


def agreement_loss(views: torch.Tensor, keep: float) -> torch.Tensor:
    """Each view against the mean of the other two, on the ``keep`` fraction of voxels where the views agree best."""
    others = (views.sum(dim=0, keepdim=True) - views).detach() / 2
    spread = views.detach().std(dim=0, unbiased=False).flatten()
    count = max(1, int(keep * spread.numel()))
    threshold = spread.kthvalue(count).values
    agreed = (spread <= threshold).view(1, *views.shape[1:])
    return ((views - others).abs() * agreed).sum() / (3 * agreed.sum())


def distillation_loss(network: CrossViewNet, block: torch.Tensor, keep: float, levels: int = 1) -> torch.Tensor:
    """Mutual distillation on ``levels`` successively finer levels above the block (x2, then x4, ...).

    Each finer level starts from the previous level's mean prediction (no gradient through it),
    cut to a window of the block's length so that every level costs the same.
    """
    total, volume = torch.zeros((), device=block.device), block
    for level in range(levels):
        views = view_predictions(network, volume)
        total = total + agreement_loss(views, keep)
        if level + 1 < levels:
            finer = interleave(volume, views.mean(dim=0)).detach()
            start = (finer.shape[0] - block.shape[0]) // 2
            volume = finer[start:start + block.shape[0]]
    return total / levels


def optimise(network: CrossViewNet, volumes: Sequence[TrainingVolume], config: TrainConfig,
             progress: ProgressCallback = no_progress, cancel: CancelToken | None = None,
             report: Callable[[dict[str, float]], None] | None = None, start_step: int = 0,
             optimiser: torch.optim.Optimizer | None = None) -> dict[str, float]:
    """Run the training loop in place (on the network's device); stops at ``config.steps`` or after
    ``config.max_minutes``. ``report(record)`` runs every ``config.validate_every`` steps and at the end."""
    device = next(network.parameters()).device
    rng = np.random.default_rng(config.seed + start_step)
    optimiser = optimiser or torch.optim.AdamW(network.parameters(), lr=config.learning_rate, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, (start_step + s) / config.steps))))
    started = time.monotonic()
    record: dict[str, float] = {}
    network.train()
    step = start_step
    while step < config.steps:
        if config.max_minutes is not None and time.monotonic() - started > 60 * config.max_minutes:
            break
        volume = volumes[int(rng.integers(len(volumes)))]
        block = augmented_block(random_block(volume, config, rng), config, rng).to(device)
        restore, distill, inplane = torch.zeros(()), torch.zeros(()), torch.zeros(())
        if config.restoration_weight > 0:
            stride, offset = restoration_gap(network, config, block.shape[0], rng)
            restore = restoration_loss(network, block, int(rng.integers(stride)), config.squared_error, stride, offset)
        if step >= config.distill_from * config.steps and config.distill_weight > 0 and config.distill_levels > 0:
            distill = distillation_loss(network, block, config.distill_keep, config.distill_levels)
        if config.inplane_weight > 0:
            rows = inplane_rows(volume.spacing, config, rng, network.config.position_input)
            inplane = inplane_restoration_loss(network, block, rows, config.inplane_images, rng, config.squared_error)
        optimiser.zero_grad(set_to_none=True)
        (config.restoration_weight * restore + config.distill_weight * distill
         + config.inplane_weight * inplane).backward()
        torch.nn.utils.clip_grad_norm_(network.parameters(), 1.0)
        optimiser.step()
        schedule.step()
        step += 1
        restoration_hu = (restore.item() ** 0.5 if config.squared_error else restore.item()) * INTENSITY.scale
        record = {"step": step, "restoration": restoration_hu, "distillation": distill.item() * INTENSITY.scale,
                  "inplane": (inplane.item() ** 0.5 if config.squared_error else inplane.item()) * INTENSITY.scale}
        shown = restoration_hu if config.restoration_weight > 0 else record["inplane"]
        progress(step, config.steps, f"{'RMS' if config.squared_error else 'L1'} {shown:.1f} HU")
        if cancel is not None:
            cancel.raise_if_set()
        if report is not None and (step % config.validate_every == 0 or step == config.steps):
            report({**record, "seconds": time.monotonic() - started})
    network.eval()
    record["seconds"] = time.monotonic() - started
    record["step"] = step
    return record


ADAPT_CONFIG = TrainConfig(steps=20_000, learning_rate=1e-3, restoration_weight=0.0, distill_weight=0.0,
                           distill_levels=1, inplane_weight=1.0, inplane_images=16, inplane_scale="volume",
                           inplane_profile="random")
"""Test-time adaptation: in-plane restoration only, rows as far apart as the volume's own slices, any slice
profile from thin to box (the volume's own is not known). An in-plane step costs about a twentieth of a
restoration and distillation step, so minutes on a CPU buy thousands of them; the step count only shapes the
learning-rate decay, the time budget ends the loop."""


def adapt(network: CrossViewNet, image: sitk.Image, minutes: float, seed: int = 0,
          progress: ProgressCallback = no_progress, cancel: CancelToken | None = None,
          device: str = "cpu") -> CrossViewNet:
    """A copy of ``network`` whose coronal/sagittal network is fine-tuned on ``image``'s own axial slices
    (:data:`ADAPT_CONFIG`) for at most ``minutes``; the axial network is unchanged."""
    tuned = copy.deepcopy(network).to(device)
    volume = TrainingVolume.from_image(image, "input")
    config = replace(ADAPT_CONFIG, max_minutes=minutes, seed=seed)
    started = time.monotonic()

    def timed_progress(done: int, total: int, message: str = "") -> None:
        elapsed = time.monotonic() - started
        progress(min(int(1000 * elapsed / (60 * minutes)), 1000), 1000, f"adapting: {message}")

    torch.manual_seed(seed)
    optimise(tuned, [volume], config, timed_progress, cancel)
    return tuned
