"""``sliceinterp train``: the shipped cross-view model, trained self-supervised on CT volumes.

The loop and its losses are the engine's (:mod:`SliceInterpLib.selfsupervised`, shared with test-time
adaptation); this adds the training volumes, the resumable checkpoint, the CSV log with restoration
PSNR per volume, and the model folder with its card.
"""

from __future__ import annotations

import csv
import datetime
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Sequence

import torch

from CTSynthesisCore.errors import UserInputError
from CTSynthesisCore.model_cards import lineage_record
from CTSynthesisCore.progress import CancelToken, ProgressCallback, no_progress
from CTSynthesisCore.volume_io import check_scalar_volume, read_volume
from CTSynthesisCore.weights import save_checkpoint_file

from ..catalog import CPU_BATCH_SIZE
from ..crossview import fused_views
from ..model import load_crossview, save_crossview
from ..networks import INTENSITY, CrossViewConfig, CrossViewNet, widened
from ..selfsupervised import TrainConfig, TrainingVolume, optimise, split_slices
from .evaluation import psnr_hu
from .model_card import model_card


@torch.no_grad()
def restoration_psnr(network: CrossViewNet, volume: TrainingVolume, batch_size: int = CPU_BATCH_SIZE) -> float:
    """PSNR of the views' weighted mean (as at inference) restoring every other slice of the whole volume."""
    was_training = network.training
    network.eval()
    coarse, truth = split_slices(volume.values)
    prediction, _ = fused_views(network, coarse.to(next(network.parameters()).device), batch_size)
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
    coarse, truth = split_slices(volume.values)
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


def initial_network(init: str, planar_context: int | None = None) -> tuple[CrossViewNet, dict[str, Any]]:
    """The network of model ``init`` (shipped name or folder) and its lineage record for the new model's metadata.
    A model without position input becomes a position model, and a ``planar_context`` above the model's widens its
    coronal/sagittal network into a 2.5D one, both starting as the model (:func:`widened`)."""
    source, metadata = load_crossview(init)
    try:
        network = widened(source, planar_context)
    except ValueError as error:
        raise UserInputError(f"model '{init}': {error}") from None
    return network.train(), lineage_record(metadata, metadata.get("training", {}).get("volumes"))


def save_checkpoint(path: Path, network: CrossViewNet, optimiser: torch.optim.Optimizer, step: int, seconds: float,
                    lineage: dict[str, Any] | None) -> None:
    """Write the resumable state atomically (:func:`~CTSynthesisCore.weights.save_checkpoint_file`)."""
    save_checkpoint_file({"network": network.state_dict(), "optimiser": optimiser.state_dict(), "step": step,
                          "seconds": seconds, "network_config": network.config.to_dict(),
                          "initialised_from": lineage}, path)


def starting_network(checkpoint_path: Path, seed: int, resume: bool, init: str | None,
                     network_config: CrossViewConfig | None, planar_context: int | None
                     ) -> tuple[CrossViewNet, dict[str, Any] | None, dict[str, Any] | None]:
    """The network a run starts from, its lineage and the checkpoint's state: the checkpoint's network
    (``resume``), model ``init`` widened to ``planar_context`` (:func:`initial_network`), or a new network of
    ``network_config`` with ``planar_context``."""
    torch.manual_seed(seed)
    if resume:
        if not checkpoint_path.is_file():
            raise UserInputError(f"--resume given but {checkpoint_path} does not exist")
        state = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
        network = CrossViewNet(CrossViewConfig.from_dict(state["network_config"]))
        network.load_state_dict(state["network"])
        return network, state.get("initialised_from"), state
    if init:
        return (*initial_network(init, planar_context), None)
    network_config = network_config or CrossViewConfig()
    if planar_context is not None:
        network_config = replace(network_config, planar_context=planar_context)
    return CrossViewNet(network_config), None, None


def train(paths: Sequence[str | Path], out: str | Path, config: TrainConfig, network_config: CrossViewConfig | None = None,
          resume: bool = False, progress: ProgressCallback = no_progress, cancel: CancelToken | None = None,
          name: str = "sliceinterp-crossview", device: str = "cpu", init: str | None = None,
          view_weights: Sequence[float] | None = None, planar_context: int | None = None) -> dict:
    """Train on the given CT volumes (from scratch, or from model ``init``); writes ``checkpoint.pt`` at every
    validation and at the end, ``log.csv`` and the model folder ``model/``. ``view_weights`` (axial, coronal,
    sagittal) replace the network's own for inference (they do not change training); ``planar_context`` sets the
    parallel planes of a new network or widens the ``init`` model's (:func:`starting_network`; a checkpoint keeps
    its own)."""
    out = Path(out)
    checkpoint_path = out / "checkpoint.pt"
    network, lineage, state = starting_network(checkpoint_path, config.seed, resume, init, network_config,
                                               planar_context)
    volume_paths = find_volumes(paths)
    volumes = load_training_volumes(volume_paths)
    out.mkdir(parents=True, exist_ok=True)
    if view_weights is not None:
        network.config = replace(network.config, view_weights=tuple(view_weights))
    network.to(device)
    optimiser = torch.optim.AdamW(network.parameters(), lr=config.learning_rate, weight_decay=1e-4)
    start_step, seconds_before = 0, 0.0
    if state is not None:  # the optimiser's state follows its parameters onto the device
        optimiser.load_state_dict(state["optimiser"])
        start_step, seconds_before = int(state["step"]), float(state["seconds"])
    with TrainingLog(out / "log.csv", network, volumes, seconds_before) as log:
        def report(record: dict[str, float]) -> None:
            log.write(record)
            save_checkpoint(checkpoint_path, network, optimiser, int(record["step"]),
                            seconds_before + record["seconds"], lineage)

        record = optimise(network, volumes, config, progress, cancel, report=report, start_step=start_step,
                          optimiser=optimiser)
    seconds = seconds_before + record["seconds"]
    save_checkpoint(checkpoint_path, network, optimiser, record["step"], seconds, lineage)
    network.cpu()
    scores = {v.name: {"crossview_db": round(restoration_psnr(network, v), 2),
                       "linear_db": round(linear_restoration_psnr(v), 2)} for v in volumes}
    metadata = {
        "name": name,
        "date": datetime.date.today().isoformat(),
        "description": "cross-view mutual distillation slice interpolation (axial + shared coronal/sagittal UNets)",
        "training": {"volumes": [p.name for p in volume_paths], "steps": record["step"],
                     "seconds": round(seconds), "device": device, "config": asdict(config),
                     "initialised_from": lineage},
        "validation": {"protocol": "restoring every other slice of each training volume (self-supervised; "
                                   "PSNR of HU + 1024 clipped to [0, 4000])", "scores": scores},
    }
    folder = save_crossview(out / "model", network, metadata, model_card)
    return {"steps": record["step"], "seconds": seconds, "folder": str(folder), "scores": scores}
