"""Self-supervised training of the cross-view networks, and test-time adaptation to one volume.

Every step takes a random block of observed slices from a training volume and adds
two losses (Fang et al. 2022):

* restoration (given level): drop every other slice of the block and ask each of
  the three views to restore the dropped slices (squared error against the observed
  slices, or L1);
* mutual distillation (``distill_levels`` finer levels, no ground truth): each view
  predicts the slices half-way between the block's slices (x2, then x4 from the x2
  result, ...) and learns from the mean of the other two views, only where the three
  agree best (the ``distill_keep`` fraction with the smallest spread, the top-k rule
  of the paper's code).

No target ever comes from outside the given volumes, so the same loop adapts a
trained model to a user's volume at test time.
"""

from __future__ import annotations

import copy
import csv
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import SimpleITK as sitk
import torch

from CTSynthesisCore.errors import UserInputError
from CTSynthesisCore.progress import CancelToken, ProgressCallback, no_progress
from CTSynthesisCore.volume_io import check_scalar_volume, read_volume

from .crossview import interleave, view_predictions
from .evaluation import psnr_hu
from .model import save_crossview
from .model_card import model_card
from .networks import HU_SCALE, CrossViewConfig, CrossViewNet, hu_to_network


@dataclass
class TrainConfig:
    """Optimisation settings (defaults: the shipped model's run)."""

    steps: int = 3000
    max_minutes: float | None = None
    learning_rate: float = 1e-3
    block_slices: int = 24
    block_size: int = 96
    distill_weight: float = 0.5
    distill_keep: float = 0.25
    distill_from: float = 0.25  # fraction of the steps trained on restoration alone
    squared_error: bool = True  # restoration loss: squared error (the PSNR objective) or L1
    distill_levels: int = 2  # finer levels distilled: 0 = none, 1 = x2 above the given slices, 2 = also x4
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
        values = hu_to_network(torch.from_numpy(sitk.GetArrayFromImage(image).astype(np.float32)))
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


def drop_every_other(values: torch.Tensor, phase: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The kept slices ``values[phase::2]`` and the dropped slices lying between them."""
    coarse = values[phase::2]
    return coarse, values[phase + 1::2][: coarse.shape[0] - 1]


def restoration_loss(network: CrossViewNet, block: torch.Tensor, phase: int = 0, squared: bool = False) -> torch.Tensor:
    """L1 (or squared) error of the three views restoring the slices dropped from ``block[phase::2]``."""
    coarse, truth = drop_every_other(block, phase)
    error = view_predictions(network, coarse) - truth
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


@torch.no_grad()
def restoration_psnr(network: CrossViewNet, volume: TrainingVolume, chunk: int = 16) -> float:
    """PSNR of the mean of the views restoring every other slice of the whole volume."""
    was_training = network.training
    network.eval()
    coarse, truth = drop_every_other(volume.values)
    prediction = view_predictions(network, coarse.to(next(network.parameters()).device), chunk,
                                  output_device="cpu").mean(dim=0)
    network.train(was_training)
    return psnr_hu(prediction.numpy() * HU_SCALE, truth.numpy() * HU_SCALE)


def optimise(network: CrossViewNet, volumes: Sequence[TrainingVolume], config: TrainConfig,
             progress: ProgressCallback = no_progress, cancel: CancelToken | None = None,
             log_path: str | Path | None = None, start_step: int = 0,
             optimiser: torch.optim.Optimizer | None = None, seconds_before: float = 0.0) -> dict[str, float]:
    """Run the training loop in place (on the network's device); stops at ``config.steps`` or after ``config.max_minutes``."""
    device = next(network.parameters()).device
    rng = np.random.default_rng(config.seed + start_step)
    optimiser = optimiser or torch.optim.AdamW(network.parameters(), lr=config.learning_rate, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, (start_step + s) / config.steps))))
    started = time.monotonic()
    writer, log_file = None, None
    if log_path is not None:
        new = not Path(log_path).exists()
        log_file = open(log_path, "a", newline="", encoding="utf-8")
        writer = csv.writer(log_file)
        if new:
            writer.writerow(["step", "seconds", "restoration", "distillation", *(f"psnr_{v.name}" for v in volumes)])
    record: dict[str, float] = {}
    network.train()
    step = start_step
    try:
        while step < config.steps:
            if config.max_minutes is not None and time.monotonic() - started > 60 * config.max_minutes:
                break
            volume = volumes[int(rng.integers(len(volumes)))]
            block = random_block(volume, config, rng).to(device)
            restore = restoration_loss(network, block, phase=int(rng.integers(2)), squared=config.squared_error)
            distill = torch.zeros(())
            if step >= config.distill_from * config.steps and config.distill_weight > 0 and config.distill_levels > 0:
                distill = distillation_loss(network, block, config.distill_keep, config.distill_levels)
            optimiser.zero_grad(set_to_none=True)
            (restore + config.distill_weight * distill).backward()
            torch.nn.utils.clip_grad_norm_(network.parameters(), 1.0)
            optimiser.step()
            schedule.step()
            step += 1
            restoration_hu = (restore.item() ** 0.5 if config.squared_error else restore.item()) * HU_SCALE
            record = {"step": step, "restoration": restoration_hu, "distillation": distill.item() * HU_SCALE}
            progress(step, config.steps, f"{'RMS' if config.squared_error else 'L1'} {restoration_hu:.1f} HU")
            if cancel is not None:
                cancel.raise_if_set()
            if writer is not None and (step % config.validate_every == 0 or step == config.steps):
                scores = [restoration_psnr(network, v) for v in volumes]
                writer.writerow([step, round(seconds_before + time.monotonic() - started, 1), round(record["restoration"], 2),
                                 round(record["distillation"], 2), *(round(s, 3) for s in scores)])
                log_file.flush()
    finally:
        if log_file is not None:
            log_file.close()
    network.eval()
    record["seconds"] = time.monotonic() - started
    record["step"] = step
    return record


def adapt(network: CrossViewNet, image: sitk.Image, minutes: float, seed: int = 0,
          progress: ProgressCallback = no_progress, cancel: CancelToken | None = None,
          device: str = "cpu") -> CrossViewNet:
    """A copy of ``network`` fine-tuned self-supervised on ``image`` for at most ``minutes``."""
    tuned = copy.deepcopy(network).to(device)
    volume = TrainingVolume.from_image(image, "input")
    steps = 10_000  # the time budget ends the loop; the step count only shapes the learning-rate decay
    config = TrainConfig(steps=steps, max_minutes=minutes, learning_rate=2e-4, distill_from=0.0, seed=seed)
    started = time.monotonic()

    def timed_progress(done: int, total: int, message: str = "") -> None:
        elapsed = time.monotonic() - started
        progress(min(int(1000 * elapsed / (60 * minutes)), 1000), 1000, f"adapting: {message}")

    torch.manual_seed(seed)
    optimise(tuned, [volume], config, timed_progress, cancel)
    return tuned


VOLUME_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd")


def find_volumes(paths: Sequence[str | Path]) -> list[Path]:
    """Volume files given directly or found (non-recursively) in the given folders."""
    found: list[Path] = []
    for item in map(Path, paths):
        if item.is_dir():
            found += sorted(p for p in item.iterdir() if p.name.lower().endswith(VOLUME_SUFFIXES))
        elif item.is_file():
            found.append(item)
        else:
            raise UserInputError(f"training data not found: {item}")
    if not found:
        raise UserInputError(f"no CT volumes ({', '.join(VOLUME_SUFFIXES)}) in {', '.join(map(str, paths))}")
    return found


def load_training_volumes(paths: Sequence[Path]) -> list[TrainingVolume]:
    """Read and check the training CTs (each needs at least 5 slices)."""
    volumes = []
    for path in paths:
        image = read_volume(path)
        check_scalar_volume(image, f"training CT {path.name}", min_slices=5)
        volumes.append(TrainingVolume.from_image(image, path.name.split(".")[0]))
    return volumes


def linear_restoration_psnr(volume: TrainingVolume) -> float:
    """PSNR of linear interpolation restoring every other slice (the baseline of :func:`restoration_psnr`)."""
    coarse, truth = drop_every_other(volume.values)
    return psnr_hu(((coarse[:-1] + coarse[1:]) / 2).numpy() * HU_SCALE, truth.numpy() * HU_SCALE)


def train(paths: Sequence[str | Path], out: str | Path, config: TrainConfig, network_config: CrossViewConfig | None = None,
          resume: bool = False, progress: ProgressCallback = no_progress, cancel: CancelToken | None = None,
          name: str = "sliceinterp-crossview", device: str = "cpu") -> dict:
    """Train on the given CT volumes; writes ``checkpoint.pt``, ``log.csv`` and the model folder ``model/``."""
    out = Path(out)
    volume_paths = find_volumes(paths)
    volumes = load_training_volumes(volume_paths)
    out.mkdir(parents=True, exist_ok=True)
    checkpoint_path = out / "checkpoint.pt"
    state = None
    if resume:
        if not checkpoint_path.is_file():
            raise UserInputError(f"--resume given but {checkpoint_path} does not exist")
        state = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
        network_config = CrossViewConfig.from_dict(state["network_config"])
    torch.manual_seed(config.seed)
    network = CrossViewNet(network_config)
    if state is not None:
        network.load_state_dict(state["network"])
    network.to(device)
    optimiser = torch.optim.AdamW(network.parameters(), lr=config.learning_rate, weight_decay=1e-4)
    start_step, seconds_before = 0, 0.0
    if state is not None:  # the optimiser's state follows its parameters onto the device
        optimiser.load_state_dict(state["optimiser"])
        start_step, seconds_before = int(state["step"]), float(state["seconds"])
    record = optimise(network, volumes, config, progress, cancel, log_path=out / "log.csv",
                      start_step=start_step, optimiser=optimiser, seconds_before=seconds_before)
    seconds = seconds_before + record["seconds"]
    torch.save({"network": network.state_dict(), "optimiser": optimiser.state_dict(), "step": record["step"],
                "seconds": seconds, "network_config": network.config.to_dict()}, checkpoint_path)
    network.cpu()
    scores = {v.name: {"crossview_db": round(restoration_psnr(network, v), 2),
                       "linear_db": round(linear_restoration_psnr(v), 2)} for v in volumes}
    metadata = {
        "name": name,
        "description": "cross-view mutual distillation slice interpolation (axial + shared coronal/sagittal UNets)",
        "intensity": "HU clipped to [-1024, 3071] divided by 1000; networks predict residuals over linear interpolation",
        "training": {"volumes": [str(p) for p in volume_paths], "steps": record["step"],
                     "seconds": round(seconds), "device": device, "config": asdict(config)},
        "validation": {"protocol": "restoring every other slice of each training volume (self-supervised; "
                                   "PSNR of HU + 1024 clipped to [0, 4000])", "scores": scores},
    }
    folder = save_crossview(out / "model", network, metadata, model_card(metadata))
    return {"steps": record["step"], "seconds": seconds, "folder": str(folder), "scores": scores}
