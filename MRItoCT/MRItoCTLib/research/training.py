"""``mritoct train``: the diffusion model (VP/DDPM or VE score model) and the CNN / GAN baselines.

One loop for all four: random 2D crops from the training split, a validation MAE
(HU, inside the body) on fixed validation slices after each epoch, a checkpoint
that ``--resume`` continues from, the best and last model folders, a CSV log,
bf16 autocast on CUDA, and DistributedDataParallel when started by ``torchrun``.
"""

from __future__ import annotations

import copy
import csv
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from CTSynthesisCore.device import choose_device
from CTSynthesisCore.errors import UserInputError
from CTSynthesisCore.progress import CancelToken, ProgressCallback, no_progress

from ..baselines import RegressionConfig, RegressionNet, adversarial_loss, patch_discriminator
from .dataset import PreparedCase, SliceSampler, cases_in_split, prepare_case
from ..intensity import HU_RANGE
from ..model import save_model
from .model_card import model_card
from ..network import ConditionalDenoiser, DenoiserConfig, diffusion_loss
from ..pipeline import context_stack
from ..samplers import sample_ddim

MODEL_TYPES = ("ddpm", "score", "cnn", "gan")


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
    mri_percentile: float = 99.5
    context_slices: int = 1
    channels: tuple[int, ...] | None = None
    max_minutes: float | None = None
    validation_slices: int = 12
    validation_steps: int = 10
    ema_decay: float = 0.999
    gan_l1_weight: float = 100.0
    mri_gamma: float = 0.3  # MRI contrast augmentation: gamma drawn log-uniformly in [e^-g, e^g]
    init_from: str | None = None  # a model (shipped name or folder) whose weights start the training
    network_options: dict[str, Any] = field(default_factory=dict)


def build_model(config: TrainConfig) -> nn.Module:
    """The network to train for a model type."""
    if config.model in ("ddpm", "score"):
        options = dict(context_slices=config.context_slices, process="vp" if config.model == "ddpm" else "ve",
                       prediction="v" if config.model == "ddpm" else "eps", **config.network_options)
        if config.channels:
            options["channels"] = tuple(config.channels)
            options.setdefault("attention_levels", tuple([False] * (len(config.channels) - 1) + [True]))
            options.setdefault("norm_num_groups", min(16, min(config.channels)))
            options.setdefault("num_head_channels", min(32, config.channels[-1]))
        return ConditionalDenoiser(DenoiserConfig(**options))
    if config.model in ("cnn", "gan"):
        options = dict(context_slices=config.context_slices, **config.network_options)
        if config.channels:
            options["channels"] = tuple(config.channels)
            options["strides"] = tuple([2] * (len(config.channels) - 1))
        return RegressionNet(RegressionConfig(**options))
    raise UserInputError(f"unknown model type '{config.model}' (choose from {', '.join(MODEL_TYPES)})")


def initial_weights(network: nn.Module, config: TrainConfig) -> dict[str, Any]:
    """Load ``config.init_from`` into ``network`` (same method and architecture); returns its lineage record."""
    from ..model import load_model

    start = load_model(config.init_from)
    if start.metadata.get("method") != config.model or start.network.config != network.config:
        raise UserInputError(f"--init {config.init_from}: that model is a '{start.metadata.get('method')}' with network "
                             f"{start.network.config.to_dict()}, not this '{config.model}' network")
    network.load_state_dict(start.network.state_dict())
    training = start.metadata.get("training", {})
    return {"model": start.metadata["name"], "sha256": start.metadata.get("sha256"),
            "steps": training.get("steps"), "seconds": training.get("seconds"), "data": training.get("data")}


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
    """CT in [-1, 1] for a batch of conditions: one DDIM sample (diffusion) or one pass (regression)."""
    if isinstance(network, ConditionalDenoiser):
        clip = network.clip_x0
        network.clip_x0 = True
        generator = torch.Generator(device=conditions.device).manual_seed(seed)
        sample = sample_ddim(network, conditions, network.process, steps=steps, generator=generator).sample
        network.clip_x0 = clip
        return sample.clamp(-1, 1)
    return network(conditions).clamp(-1, 1)


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


def validation_mae(network: nn.Module, items, device: str, steps: int) -> float:
    """Mean absolute error in HU inside the body over the validation slices (one batch)."""
    conditions, cts, masks = items
    network.eval()
    prediction = predict_slices(network, conditions.to(device), seed=0, steps=steps)[:, 0].float().cpu().numpy()
    return float((np.abs(prediction - cts)[masks] * HU_RANGE / 2).mean())


def train(data: str | Path, out: str | Path, config: TrainConfig, device: str = "auto", resume: bool = False,
          progress: ProgressCallback = no_progress, cancel: CancelToken | None = None,
          log=print) -> dict[str, Any]:
    """Train one model type; writes ``out/best``, ``out/last`` (model folders), ``checkpoint.pt``, ``train_log.csv``."""
    rank, local_rank, world = _distributed()
    choice = choose_device(device)
    device_name = f"cuda:{local_rank}" if choice.device.startswith("cuda") and world > 1 else choice.device
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed + rank)
    network = build_model(config)
    lineage = initial_weights(network, config) if config.init_from and not resume else None
    network = network.to(device_name)
    multiple = network.config.size_multiple
    if config.crop % multiple:
        raise UserInputError(f"--crop must be a multiple of {multiple} for this network")
    train_cases = [prepare_case(c, config.spacing_mm, config.mri_percentile) for c in cases_in_split(data, "train")]
    validation_cases = [prepare_case(c, config.spacing_mm, config.mri_percentile) for c in cases_in_split(data, "validation")]
    if not train_cases or not validation_cases:
        raise UserInputError(f"{data} needs cases in both the train and validation splits (have {len(train_cases)} "
                             f"and {len(validation_cases)}); make more cases")
    sampler = SliceSampler(train_cases, config.crop, config.context_slices, seed=config.seed + 1000 * rank,
                           mri_gamma=config.mri_gamma)
    validation_items = validation_set(validation_cases, config.validation_slices, config.context_slices,
                                      max(config.crop, 128 // multiple * multiple), config.seed)

    ema = copy.deepcopy(network).eval() if config.model in ("ddpm", "score") else None
    discriminator = patch_discriminator(network.config.condition_channels).to(device_name) if config.model == "gan" else None
    trained = network
    if world > 1:
        if device_name.startswith("cuda"):  # the baselines' batch norm sees every rank (CUDA only in PyTorch)
            network = nn.SyncBatchNorm.convert_sync_batchnorm(network)
        trained = nn.parallel.DistributedDataParallel(network, device_ids=[local_rank] if device_name.startswith("cuda") else None)
        if discriminator is not None:
            discriminator = nn.parallel.DistributedDataParallel(discriminator, device_ids=[local_rank] if device_name.startswith("cuda") else None)
    optimizer = torch.optim.AdamW(network.parameters(), lr=config.learning_rate, betas=(0.9, 0.999) if discriminator is None else (0.5, 0.999))
    optimizer_d = torch.optim.AdamW(discriminator.parameters(), lr=config.learning_rate, betas=(0.5, 0.999)) if discriminator is not None else None
    generator = torch.Generator(device=device_name).manual_seed(config.seed + rank)

    start_epoch, best, step, seconds_before = 0, float("inf"), 0, 0.0
    checkpoint_path = out / "checkpoint.pt"
    if resume:
        if not checkpoint_path.is_file():
            raise UserInputError(f"--resume given but {checkpoint_path} does not exist")
        state = torch.load(checkpoint_path, map_location=device_name, weights_only=False)
        network.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        if discriminator is not None:
            getattr(discriminator, "module", discriminator).load_state_dict(state["discriminator"])
            optimizer_d.load_state_dict(state["optimizer_d"])
        start_epoch, best, step, seconds_before = state["epoch"], state["best"], state["step"], state["seconds"]
        lineage = state.get("initialised_from")
        sampler.rng = np.random.default_rng([config.seed + 1000 * rank, start_epoch])
        log(f"resumed from epoch {start_epoch} (best validation MAE {best:.1f} HU)")

    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device_name.startswith("cuda") else torch.autocast("cpu", enabled=False)
    started = time.monotonic()
    log_path = out / "train_log.csv"
    new_log = not (resume and log_path.exists())
    total_steps = config.epochs * config.steps_per_epoch
    summary: dict[str, Any] = {}
    with open(log_path, "w" if new_log else "a", newline="", encoding="utf-8") as log_file:
        writer = csv.writer(log_file)
        if new_log and rank == 0:
            writer.writerow(["epoch", "step", "train_loss", "validation_mae_hu", "seconds"])
        for epoch in range(start_epoch, config.epochs):
            network.train()
            losses = []
            for _ in range(config.steps_per_epoch):
                if cancel is not None:
                    cancel.raise_if_set()
                ct, condition = (t.to(device_name, non_blocking=True) for t in sampler.batch(config.batch_size))
                with autocast:
                    if config.model in ("ddpm", "score"):
                        loss = diffusion_loss(network, ct, condition, generator=generator, wrapped=trained)
                    else:
                        prediction = trained(condition)
                        loss = torch.nn.functional.l1_loss(prediction, ct)
                        if discriminator is not None:
                            fake_logits = discriminator(torch.cat([condition, prediction], 1))[-1]
                            loss = adversarial_loss(fake_logits, True) + config.gan_l1_weight * loss
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if discriminator is not None:
                    with autocast:
                        real = discriminator(torch.cat([condition, ct], 1))[-1]
                        fake = discriminator(torch.cat([condition, prediction.detach()], 1))[-1]
                        loss_d = 0.5 * (adversarial_loss(real, True) + adversarial_loss(fake, False))
                    optimizer_d.zero_grad(set_to_none=True)
                    loss_d.backward()
                    optimizer_d.step()
                if ema is not None:
                    _update_ema(ema, network, min(config.ema_decay, (1 + step) / (10 + step)))
                step += 1
                losses.append(loss.item())
                progress(step, total_steps, f"epoch {epoch + 1}/{config.epochs} loss {losses[-1]:.4f}")
                if config.max_minutes and time.monotonic() - started > config.max_minutes * 60:
                    break
            evaluated = ema if ema is not None else network
            mae = validation_mae(evaluated, validation_items, device_name, config.validation_steps) if rank == 0 else float("nan")
            seconds = seconds_before + time.monotonic() - started
            if rank == 0:
                writer.writerow([epoch + 1, step, f"{np.mean(losses):.5f}", f"{mae:.2f}", f"{seconds:.0f}"])
                log_file.flush()
                log(f"epoch {epoch + 1}: loss {np.mean(losses):.4f}, validation MAE {mae:.1f} HU, {seconds:.0f} s")
                record = _record(config, choice.device, choice.reason, data, train_cases, validation_cases, step, seconds, mae)
                if lineage:
                    record["training"]["initialised_from"] = lineage
                save_model(out / "last", evaluated, record, model_card(record))
                if mae < best:
                    best = mae
                    save_model(out / "best", evaluated, record, model_card(record))
                checkpoint = {"model": network.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch + 1,
                              "best": best, "step": step, "seconds": seconds, "config": asdict(config),
                              "initialised_from": lineage}
                if ema is not None:
                    checkpoint["ema"] = ema.state_dict()
                if discriminator is not None:
                    checkpoint["discriminator"] = getattr(discriminator, "module", discriminator).state_dict()
                    checkpoint["optimizer_d"] = optimizer_d.state_dict()
                torch.save(checkpoint, out / ".checkpoint.tmp")
                os.replace(out / ".checkpoint.tmp", checkpoint_path)
                summary = {"epochs": epoch + 1, "steps": step, "seconds": seconds, "best_validation_mae_hu": best}
            if config.max_minutes and time.monotonic() - started > config.max_minutes * 60:
                log(f"stopping after {config.max_minutes} minutes (--max-minutes)")
                break
    if world > 1:
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()
    return summary


def _record(config: TrainConfig, device: str, reason: str, data, train_cases, validation_cases, step: int,
            seconds: float, mae: float) -> dict[str, Any]:
    """The metadata stored beside the weights."""
    names = {"ddpm": "VP/DDPM diffusion (v-prediction, Min-SNR-5)", "score": "VE score model (noise prediction = DSM)",
             "cnn": "UNet regression, L1 (CNN baseline)", "gan": "pix2pix: UNet generator + PatchGAN, L1 + LSGAN"}
    return {
        "name": f"mritoct-{config.model}",
        "method": config.model,
        "description": names[config.model],
        "spacing_mm": list(config.spacing_mm),
        "mri_percentile": config.mri_percentile,
        "intensity": {"ct": "HU clipped to [-1024, 3000] mapped linearly to [-1, 1]",
                      "mri": f"0 -> -1, body {config.mri_percentile}th percentile -> +1, clipped to [-1, 1.5]"},
        "training": {"data": str(data), "train_cases": [c.name for c in train_cases],
                     "validation_cases": [c.name for c in validation_cases], "steps": step,
                     "seconds": round(seconds), "device": device, "device_reason": reason,
                     "config": json.loads(json.dumps(asdict(config)))},
        "validation": {"mae_hu": round(mae, 2), "protocol": "one DDIM-10 sample (diffusion) or one pass, "
                       f"{config.validation_slices} fixed validation slices, inside the body"},
    }
