"""``mritoct train``: the diffusion model (VP/DDPM or VE score model) and the CNN / GAN baselines.

One loop for every model type (:data:`~MRItoCTLib.model_types.MODEL_TYPES` says how each is built,
its loss, and whether it keeps an EMA copy or a discriminator): random 2D crops from the training
split, a validation MAE (HU, inside the body) on fixed validation slices after each epoch, a
checkpoint that ``--resume`` continues from, the best and last model folders, a CSV log, bf16
autocast on CUDA, and DistributedDataParallel when started by ``torchrun``.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import datetime
import json
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor, nn

from CTSynthesisCore.device import choose_device
from CTSynthesisCore.errors import UserInputError
from CTSynthesisCore.model_cards import lineage_record
from CTSynthesisCore.progress import CancelToken, ProgressCallback, no_progress
from CTSynthesisCore.weights import save_checkpoint_file

from ..baselines import adversarial_loss, patch_discriminator
from ..intensity import MEDIAN_INTENSITY, IntensityMapping
from ..model import save_model
from ..model_types import Draw, LossInputs, ModelType, kind_of, model_kind, model_type
from ..pipeline import context_stack
from .dataset import (DataFolders, PreparedCase, SliceSampler, cases_in_folders, data_folders, prepare_case,
                      recipe_record)
from .metrics import BONE_HU
from .model_card import model_card


@dataclass
class TrainConfig:
    model: str = "ddpm"
    epochs: int = 10
    steps_per_epoch: int = 100
    batch_size: int = 8
    learning_rate: float = 2e-4
    crop: int = 96
    seed: int = 0
    spacing_mm: tuple[float, float] = (2.0, 2.0)
    intensity: IntensityMapping = MEDIAN_INTENSITY
    context_slices: int = 1
    channels: tuple[int, ...] | None = None
    max_minutes: float | None = None
    validation_slices: int = 12
    validation_steps: int = 10
    ema_decay: float = 0.999
    gan_l1_weight: float = 100.0
    bone_weight: float = 1.0  # cnn/gan: the L1 weight of voxels whose true CT is bone (above BONE_HU)
    mri_gamma: float = 0.3  # MRI contrast augmentation: gamma drawn log-uniformly in [e^-g, e^g]
    init_from: str | None = None  # a model (shipped name or folder) whose weights start the training
    mean_model: str | None = None  # the trained regression model a residual model's mean comes from
    network_options: dict[str, Any] = field(default_factory=dict)

    @property
    def model_type(self) -> ModelType:
        return model_type(self.model)


def initial_weights(network: nn.Module, config: TrainConfig) -> dict[str, Any]:
    """Load ``config.init_from`` into ``network`` (same architecture, and a method it can start); returns its
    lineage record."""
    from ..model import load_model

    start = load_model(config.init_from)
    if (not can_start_from(start.metadata.get("method"), config.model)
            or trained_part(start.network.config) != trained_part(network.config)):
        raise UserInputError(f"--init {config.init_from}: that model is a '{start.metadata.get('method')}' with network "
                             f"{start.network.config.to_dict()}, not this '{config.model}' network")
    if start.intensity != config.intensity:
        raise UserInputError(f"--init {config.init_from}: that model was trained with another MRI scale "
                             f"({start.intensity.describe()}); train with the same --mri-scale")
    weights = {k: v for k, v in start.network.state_dict().items() if not k.startswith("mean_network.")}
    missing = network.load_state_dict(weights, strict=False).missing_keys
    if any(not key.startswith("mean_network.") for key in missing):
        raise RuntimeError(f"--init {config.init_from}: weights missing for {missing}")
    return lineage_record(start.metadata, start.metadata.get("training", {}).get("data"))


def can_start_from(method: str | None, model: str) -> bool:
    """Whether ``--init`` may start a ``model`` run from weights trained as ``method``: the same method, or a
    CNN's weights for the pix2pix GAN, whose generator is the CNN's network (pix2pix's L1 pre-training)."""
    return method == model or (method, model) == ("cnn", "gan")


def trained_part(network_config: Any) -> Any:
    """The configuration ``--init`` must match: a residual model's frozen mean network may be another CNN
    (``--mean-model``), so only its denoiser has to be the same."""
    return replace(network_config, mean_network={}) if hasattr(network_config, "mean_network") else network_config


def mean_network_options(config: TrainConfig
                         ) -> tuple[dict[str, Any], dict[str, Tensor] | None, dict[str, Any] | None]:
    """The network options of this run and, for a residual model, the weights of its frozen mean network
    (``--mean-model``: a trained regression model with this run's spacing and MRI scale) and its lineage record."""
    if not model_kind(config.model_type.kind).needs_mean_model:
        return config.network_options, None, None
    from ..model import load_model

    if not config.mean_model:
        raise UserInputError(f"--model {config.model} needs --mean-model: a trained CNN (model folder or shipped name)")
    mean = load_model(config.mean_model)
    if mean.kind.name != "regression":
        raise UserInputError(f"--mean-model {config.mean_model} is a '{mean.kind.name}' model, not a regression (CNN)")
    if mean.intensity != config.intensity or tuple(mean.spacing_mm) != tuple(config.spacing_mm):
        raise UserInputError(f"--mean-model {config.mean_model} was trained with spacing {mean.spacing_mm} mm and "
                             f"{mean.intensity.describe()}; train with the same --spacing and --mri-scale")
    if mean.config.context_slices != config.context_slices:
        raise UserInputError(f"--mean-model {config.mean_model} sees {mean.config.context_slices} context slices; "
                             f"train with --context-slices {mean.config.context_slices}")
    return ({**config.network_options, "mean_network": mean.config.to_dict()}, mean.network.state_dict(),
            lineage_record(mean.metadata, mean.metadata.get("training", {}).get("data")))


def _distributed() -> tuple[int, int, int]:
    """(rank, local rank, world size), initialising torch.distributed when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 0, 1
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), int(os.environ.get("LOCAL_RANK", "0")), world


@torch.no_grad()
def _update_ema(ema: nn.Module, model: nn.Module, decay: float) -> None:
    for ema_param, param in zip(ema.parameters(), model.parameters()):
        ema_param.lerp_(param.detach(), 1.0 - decay)
    for ema_buffer, buffer in zip(ema.buffers(), model.buffers()):
        ema_buffer.copy_(buffer)


@torch.inference_mode()
def predict_slices(network: nn.Module, conditions: Tensor, seed: int, steps: int) -> Tensor:
    """CT in [-1, 1] for a batch of conditions: one DDIM sample with x0 clipped (sampled kinds) or one pass."""
    kind = kind_of(network)
    generator = torch.Generator(device=conditions.device).manual_seed(seed)
    run = network.clipped_eps if kind.stochastic else network
    return kind.draw(run, network, conditions, Draw("ddim", steps, {}, generator))[0].clamp(-1, 1)


def validation_set(cases: list[PreparedCase], count: int, context: int, size: int, seed: int):
    """Fixed validation slices, each a ``size`` square around the body's centre: (conditions, CT, masks)."""
    rng = np.random.default_rng(seed)
    picks = [(c, k) for c, case in enumerate(cases) for k in range(case.mri.shape[0]) if case.mask[k].mean() > 0.05]
    chosen = [picks[i] for i in sorted(rng.choice(len(picks), size=min(count, len(picks)), replace=False))]
    conditions, cts, masks = [], [], []
    for c, k in chosen:
        case = cases[c]
        rows, columns = np.nonzero(case.mask[k])
        centre = (int(rows.mean()), int(columns.mean()))
        padding = [(0, 0), (size // 2, size // 2), (size // 2, size // 2)]
        window = (slice(None), slice(centre[0], centre[0] + size), slice(centre[1], centre[1] + size))
        conditions.append(np.pad(context_stack(case.mri, [k], context)[0], padding, constant_values=-1.0)[window])
        cts.append(np.pad(case.ct[k][None], padding, constant_values=-1.0)[window][0])
        masks.append(np.pad(case.mask[k][None], padding, constant_values=False)[window][0])
    return torch.from_numpy(np.stack(conditions)), np.stack(cts), np.stack(masks)


def validation_mae(network: nn.Module, items, device: str, steps: int, intensity: IntensityMapping) -> float:
    """Mean absolute error in HU inside the body over the validation slices (one batch)."""
    conditions, cts, masks = items
    network.eval()
    prediction = predict_slices(network, conditions.to(device), seed=0, steps=steps)[:, 0].float().cpu().numpy()
    return float((np.abs(prediction - cts)[masks] * intensity.hu_range / 2).mean())


@dataclass
class Trainer:
    """The modules and optimisers of one run, and where it stands (what the checkpoint holds)."""

    config: TrainConfig
    device: str
    network: nn.Module
    trained: nn.Module  # ``network`` or its DistributedDataParallel wrapper
    ema: nn.Module | None
    discriminator: nn.Module | None
    optimizer: torch.optim.Optimizer
    optimizer_d: torch.optim.Optimizer | None
    generator: torch.Generator
    lineage: dict[str, Any] | None = None
    mean_lineage: dict[str, Any] | None = None  # a residual model's frozen mean network
    epoch: int = 0
    best: float = float("inf")
    step: int = 0
    seconds_before: float = 0.0

    @property
    def evaluated(self) -> nn.Module:
        """What is validated and saved: the EMA copy when the type keeps one."""
        return self.ema if self.ema is not None else self.network


def build_trainer(config: TrainConfig, device: str, rank: int, local_rank: int, world: int,
                  from_init: bool = True) -> Trainer:
    """A freshly initialised network (or, with ``from_init``, ``--init``'s weights), its EMA copy or discriminator,
    optimisers and wrappers."""
    kind = config.model_type
    torch.manual_seed(config.seed + rank)
    options, mean_weights, mean_lineage = mean_network_options(config)
    network = kind.build(config.context_slices, config.channels, options, config.intensity)
    lineage = initial_weights(network, config) if config.init_from and from_init else None
    if mean_weights is not None:  # after --init: a residual model fine-tuned on a new mean keeps that mean
        network.mean_network.load_state_dict(mean_weights)
    network = network.to(device)
    if config.crop % network.config.size_multiple:
        raise UserInputError(f"--crop must be a multiple of {network.config.size_multiple} for this network")
    ema = copy.deepcopy(network).eval() if kind.ema else None
    discriminator = patch_discriminator(network.config.condition_channels).to(device) if kind.adversarial else None
    trained = network
    if world > 1:
        device_ids = [local_rank] if device.startswith("cuda") else None
        if device.startswith("cuda"):  # the baselines' batch norm sees every rank (CUDA only in PyTorch)
            network = nn.SyncBatchNorm.convert_sync_batchnorm(network)
        trained = nn.parallel.DistributedDataParallel(network, device_ids=device_ids)
        if discriminator is not None:
            discriminator = nn.parallel.DistributedDataParallel(discriminator, device_ids=device_ids)
    betas = (0.9, 0.999) if discriminator is None else (0.5, 0.999)
    optimizer = torch.optim.AdamW(network.parameters(), lr=config.learning_rate, betas=betas)
    optimizer_d = (torch.optim.AdamW(discriminator.parameters(), lr=config.learning_rate, betas=(0.5, 0.999))
                   if discriminator is not None else None)
    generator = torch.Generator(device=device).manual_seed(config.seed + rank)
    return Trainer(config, device, network, trained, ema, discriminator, optimizer, optimizer_d, generator, lineage,
                   mean_lineage)


def intensity_of_config(config: dict[str, Any]) -> IntensityMapping:
    """The intensity mapping a saved training configuration used (before versioning: only its percentile)."""
    if isinstance(config.get("intensity"), dict):
        return IntensityMapping(**config["intensity"])
    return IntensityMapping(mri_percentile=float(config.get("mri_percentile", IntensityMapping.mri_percentile)))


def checkpoint_intensity(path: Path) -> IntensityMapping | None:
    """The intensity mapping of a run's checkpoint, or None when there is no checkpoint."""
    if not Path(path).is_file():
        return None
    return intensity_of_config(torch.load(path, map_location="cpu", weights_only=False).get("config", {}))


def resume_trainer(trainer: Trainer, path: Path) -> None:
    """Continue from ``checkpoint.pt``: weights, optimisers, epoch, best score, steps, time and lineage."""
    if not path.is_file():
        raise UserInputError(f"--resume given but {path} does not exist")
    state = torch.load(path, map_location=trainer.device, weights_only=False)
    stored = intensity_of_config(state.get("config", {}))
    if stored != trainer.config.intensity:
        raise UserInputError(f"--resume: {path} was trained with another MRI scale ({stored.describe()}); resume with "
                             "the same --mri-scale")
    trainer.network.load_state_dict(state["model"])
    trainer.optimizer.load_state_dict(state["optimizer"])
    if trainer.ema is not None:  # a run saved before its type kept an EMA starts the average here
        trainer.ema.load_state_dict(state.get("ema", state["model"]))
    if trainer.discriminator is not None:
        getattr(trainer.discriminator, "module", trainer.discriminator).load_state_dict(state["discriminator"])
        trainer.optimizer_d.load_state_dict(state["optimizer_d"])
    trainer.epoch, trainer.best, trainer.step = state["epoch"], state["best"], state["step"]
    trainer.seconds_before, trainer.lineage = state["seconds"], state.get("initialised_from")


def save_checkpoint(trainer: Trainer, path: Path, seconds: float) -> None:
    """Write the checkpoint (``seconds`` of training so far) atomically: a temporary file, then a rename."""
    checkpoint = {"model": trainer.network.state_dict(), "optimizer": trainer.optimizer.state_dict(),
                  "epoch": trainer.epoch, "best": trainer.best, "step": trainer.step, "seconds": seconds,
                  "config": asdict(trainer.config), "initialised_from": trainer.lineage}
    if trainer.ema is not None:
        checkpoint["ema"] = trainer.ema.state_dict()
    if trainer.discriminator is not None:
        checkpoint["discriminator"] = getattr(trainer.discriminator, "module", trainer.discriminator).state_dict()
        checkpoint["optimizer_d"] = trainer.optimizer_d.state_dict()
    save_checkpoint_file(checkpoint, path)


def training_step(trainer: Trainer, ct: Tensor, condition: Tensor, autocast: contextlib.AbstractContextManager) -> float:
    """One optimisation step of the network (and of the discriminator, for the GAN); returns the network's loss."""
    config = trainer.config
    with autocast:
        loss, prediction = config.model_type.loss(LossInputs(trainer.network, trainer.trained, ct, condition,
                                                             trainer.generator, trainer.discriminator,
                                                             config.gan_l1_weight, config.bone_weight,
                                                             float(config.intensity.hu_to_unit(BONE_HU))))
    trainer.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    trainer.optimizer.step()
    if trainer.discriminator is not None:
        discriminator_step(trainer, ct, condition, prediction, autocast)
    if trainer.ema is not None:
        _update_ema(trainer.ema, trainer.network, min(config.ema_decay, (1 + trainer.step) / (10 + trainer.step)))
    trainer.step += 1
    return loss.item()


def discriminator_step(trainer: Trainer, ct: Tensor, condition: Tensor, prediction: Tensor,
                       autocast: contextlib.AbstractContextManager) -> None:
    """The PatchGAN learns to tell (MRI, true CT) from (MRI, predicted CT)."""
    with autocast:
        real = trainer.discriminator(torch.cat([condition, ct], 1))[-1]
        fake = trainer.discriminator(torch.cat([condition, prediction.detach()], 1))[-1]
        loss_d = 0.5 * (adversarial_loss(real, True) + adversarial_loss(fake, False))
    trainer.optimizer_d.zero_grad(set_to_none=True)
    loss_d.backward()
    trainer.optimizer_d.step()


def train_epoch(trainer: Trainer, sampler: SliceSampler, autocast, progress: ProgressCallback,
                cancel: CancelToken | None, out_of_time: Callable[[], bool]) -> list[float]:
    """``steps_per_epoch`` steps (fewer when time runs out); returns their losses."""
    config = trainer.config
    total_steps = config.epochs * config.steps_per_epoch
    trainer.network.train()
    losses = []
    for _ in range(config.steps_per_epoch):
        if cancel is not None:
            cancel.raise_if_set()
        ct, condition = (t.to(trainer.device, non_blocking=True) for t in sampler.batch(config.batch_size))
        losses.append(training_step(trainer, ct, condition, autocast))
        progress(trainer.step, total_steps, f"epoch {trainer.epoch + 1}/{config.epochs} loss {losses[-1]:.4f}")
        if out_of_time():
            break
    return losses


def open_log(path: Path, resumed: bool, rank: int):
    """The CSV training log: appended to when resuming, else started with its header (by process 0)."""
    new_log = not (resumed and path.exists())
    log_file = open(path, "w" if new_log else "a", newline="", encoding="utf-8")
    if new_log and rank == 0:
        csv.writer(log_file).writerow(["epoch", "step", "train_loss", "validation_mae_hu", "seconds"])
    return log_file


def train(data: DataFolders, out: str | Path, config: TrainConfig, device: str = "auto", resume: bool = False,
          progress: ProgressCallback = no_progress, cancel: CancelToken | None = None,
          log=print) -> dict[str, Any]:
    """Train one model type on the cases of one data folder or several; writes ``out/best``, ``out/last`` (model
    folders), ``checkpoint.pt``, ``train_log.csv``."""
    rank, local_rank, world = _distributed()
    choice = choose_device(device)
    device_name = f"cuda:{local_rank}" if choice.device.startswith("cuda") and world > 1 else choice.device
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    trainer = build_trainer(config, device_name, rank, local_rank, world, from_init=not resume)
    folders = " ".join(map(str, data_folders(data)))
    train_cases, validation_cases = ([prepare_case(c, config.spacing_mm, config.intensity) for c in cases]
                                     for cases in cases_in_folders(data, ("train", "validation")))
    if not train_cases or not validation_cases:
        raise UserInputError(f"{folders} needs cases in both the train and validation "
                             f"splits (have {len(train_cases)} and {len(validation_cases)}); make more cases")
    sampler = SliceSampler(train_cases, config.crop, config.context_slices, seed=config.seed + 1000 * rank,
                           mri_gamma=config.mri_gamma)
    multiple = trainer.network.config.size_multiple
    validation_items = validation_set(validation_cases, config.validation_slices, config.context_slices,
                                      max(config.crop, 128 // multiple * multiple), config.seed)
    checkpoint_path = out / "checkpoint.pt"
    if resume:
        resume_trainer(trainer, checkpoint_path)
        sampler.rng = np.random.default_rng([config.seed + 1000 * rank, trainer.epoch])
        log(f"resumed from epoch {trainer.epoch} (best validation MAE {trainer.best:.1f} HU)")
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device_name.startswith("cuda")
                else torch.autocast("cpu", enabled=False))
    started = time.monotonic()

    def out_of_time() -> bool:
        return bool(config.max_minutes) and time.monotonic() - started > config.max_minutes * 60

    summary: dict[str, Any] = {}
    recipes = recipe_record(data)  # read once: every epoch's record carries it
    with open_log(out / "train_log.csv", resume, rank) as log_file:
        while trainer.epoch < config.epochs:
            losses = train_epoch(trainer, sampler, autocast, progress, cancel, out_of_time)
            mae = (validation_mae(trainer.evaluated, validation_items, device_name, config.validation_steps,
                                  config.intensity) if rank == 0 else float("nan"))
            trainer.epoch += 1
            if rank == 0:
                seconds = trainer.seconds_before + time.monotonic() - started
                csv.writer(log_file).writerow([trainer.epoch, trainer.step, f"{np.mean(losses):.5f}", f"{mae:.2f}",
                                               f"{seconds:.0f}"])
                log_file.flush()
                log(f"epoch {trainer.epoch}: loss {np.mean(losses):.4f}, validation MAE {mae:.1f} HU, {seconds:.0f} s")
                record = _record(config, choice.device, choice.reason, folders, train_cases, validation_cases,
                                 trainer.step, seconds, mae, recipes)
                if trainer.lineage:
                    record["training"]["initialised_from"] = trainer.lineage
                if trainer.mean_lineage:
                    record["training"]["mean_model"] = trainer.mean_lineage
                save_model(out / "last", trainer.evaluated, record, model_card, config.intensity)
                if mae < trainer.best:
                    trainer.best = mae
                    save_model(out / "best", trainer.evaluated, record, model_card, config.intensity)
                save_checkpoint(trainer, checkpoint_path, seconds)
                summary = {"epochs": trainer.epoch, "steps": trainer.step, "seconds": seconds,
                           "best_validation_mae_hu": trainer.best}
            if out_of_time():
                log(f"stopping after {config.max_minutes} minutes (--max-minutes)")
                break
    if world > 1:
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()
    return summary


def _record(config: TrainConfig, device: str, reason: str, folders: str, train_cases, validation_cases, step: int,
            seconds: float, mae: float, recipes: dict[str, Any]) -> dict[str, Any]:
    """The metadata stored beside the weights (``recipes``: how the data's MRIs were rendered,
    :func:`~.dataset.recipe_record`)."""
    return {
        "name": f"mritoct-{config.model}",
        "method": config.model,
        "description": config.model_type.description,
        "spacing_mm": list(config.spacing_mm),
        "intensity": config.intensity.to_dict(),
        "date": datetime.date.today().isoformat(),
        "training": {"data": folders, "train_cases": [c.name for c in train_cases],
                     "validation_cases": [c.name for c in validation_cases], "steps": step,
                     "seconds": round(seconds), "device": device, "device_reason": reason,
                     "config": json.loads(json.dumps(asdict(config))), **recipes},
        "validation": {"mae_hu": round(mae, 2), "protocol": "one DDIM-10 sample (diffusion) or one pass, "
                       f"{config.validation_slices} fixed validation slices, inside the body"},
    }
