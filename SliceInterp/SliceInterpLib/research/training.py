"""``sliceinterp train``: the shipped cross-view model, trained self-supervised on CT volumes.

The loop and its losses are the engine's (:mod:`SliceInterpLib.selfsupervised`, shared with test-time
adaptation); this adds the training volumes, the resumable checkpoint, the CSV log with restoration
PSNR per volume, and the model folder with its card.
"""

from __future__ import annotations

import csv
import datetime
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

import torch

from CTSynthesisCore.errors import UserInputError
from CTSynthesisCore.progress import CancelToken, ProgressCallback, no_progress
from CTSynthesisCore.volume_io import check_scalar_volume, read_volume

from ..catalog import CPU_BATCH_SIZE
from ..crossview import view_predictions
from ..model import save_crossview
from ..networks import INTENSITY, CrossViewConfig, CrossViewNet
from ..selfsupervised import TrainConfig, TrainingVolume, drop_every_other, optimise
from .evaluation import psnr_hu
from .model_card import model_card


@torch.no_grad()
def restoration_psnr(network: CrossViewNet, volume: TrainingVolume, batch_size: int = CPU_BATCH_SIZE) -> float:
    """PSNR of the mean of the views restoring every other slice of the whole volume."""
    was_training = network.training
    network.eval()
    coarse, truth = drop_every_other(volume.values)
    prediction = view_predictions(network, coarse.to(next(network.parameters()).device), batch_size,
                                  output_device="cpu").mean(dim=0)
    network.train(was_training)
    return psnr_hu(prediction.numpy() * INTENSITY.scale, truth.numpy() * INTENSITY.scale)


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
    return psnr_hu(((coarse[:-1] + coarse[1:]) / 2).numpy() * INTENSITY.scale, truth.numpy() * INTENSITY.scale)


class TrainingLog:
    """``log.csv``: restoration losses and each volume's restoration PSNR, appended on every report."""

    def __init__(self, path: Path, network: CrossViewNet, volumes: Sequence[TrainingVolume], seconds_before: float) -> None:
        self.path, self.network, self.volumes, self.seconds_before = path, network, volumes, seconds_before
        self.file = None

    def __enter__(self) -> "TrainingLog":
        new = not self.path.exists()
        self.file = open(self.path, "a", newline="", encoding="utf-8")
        self.writer = csv.writer(self.file)
        if new:
            self.writer.writerow(["step", "seconds", "restoration", "distillation",
                                  *(f"psnr_{v.name}" for v in self.volumes)])
        return self

    def write(self, record: dict[str, float]) -> None:
        scores = [restoration_psnr(self.network, v) for v in self.volumes]
        self.writer.writerow([record["step"], round(self.seconds_before + record["seconds"], 1),
                              round(record["restoration"], 2), round(record["distillation"], 2),
                              *(round(s, 3) for s in scores)])
        self.file.flush()

    def __exit__(self, *exc_info) -> None:
        self.file.close()


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
    with TrainingLog(out / "log.csv", network, volumes, seconds_before) as log:
        record = optimise(network, volumes, config, progress, cancel, report=log.write, start_step=start_step,
                          optimiser=optimiser)
    seconds = seconds_before + record["seconds"]
    torch.save({"network": network.state_dict(), "optimiser": optimiser.state_dict(), "step": record["step"],
                "seconds": seconds, "network_config": network.config.to_dict()}, checkpoint_path)
    network.cpu()
    scores = {v.name: {"crossview_db": round(restoration_psnr(network, v), 2),
                       "linear_db": round(linear_restoration_psnr(v), 2)} for v in volumes}
    metadata = {
        "name": name,
        "date": datetime.date.today().isoformat(),
        "description": "cross-view mutual distillation slice interpolation (axial + shared coronal/sagittal UNets)",
        "training": {"volumes": [str(p) for p in volume_paths], "steps": record["step"],
                     "seconds": round(seconds), "device": device, "config": asdict(config)},
        "validation": {"protocol": "restoring every other slice of each training volume (self-supervised; "
                                   "PSNR of HU + 1024 clipped to [0, 4000])", "scores": scores},
    }
    folder = save_crossview(out / "model", network, metadata, model_card(metadata))
    return {"steps": record["step"], "seconds": seconds, "folder": str(folder), "scores": scores}
