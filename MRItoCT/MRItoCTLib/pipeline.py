"""Volume pipeline: 3D MRI in, synthetic CT (HU) and Monte-Carlo uncertainty out, on the input's grid.

Reorient to axial order, resample in-plane to the model's spacing, normalise the
MRI, sample slice batches (Monte-Carlo samples batched together), map to HU, set
air outside the body, and resample back to exactly the input grid.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import SimpleITK as sitk
import torch

from CTSynthesisCore.acceleration import (FastNetwork, InferenceOptions, auto_batch_size, channels_last,
                                          configure_cpu_threads)
from CTSynthesisCore.device import choose_device, raise_if_simulated_out_of_memory, run_with_batch_retry
from CTSynthesisCore.errors import UserInputError
from CTSynthesisCore.progress import CancelToken, ProgressCallback, no_progress
from CTSynthesisCore.volume_io import check_memory, check_scalar_volume

from .intensity import HU_MIN, body_mask, foreground_mask, looks_like_ct, normalize_mri, unit_std_to_hu, unit_to_hu
from .model import LoadedModel, new_generator
from .montecarlo import monte_carlo
from .samplers import DEFAULT_SAMPLER, SAMPLER_INFO, get_sampler


@dataclass
class SynthesisSettings:
    """What the user chose; ``steps=None`` takes the sampler's default."""

    sampler: str = DEFAULT_SAMPLER
    steps: int | None = None
    mc: int = 4
    seed: int = 0
    batch_size: int | None = None  # network inputs per forward pass; None = from free memory (GPU) or 8 (CPU)
    keep_samples: bool = False
    sampler_options: dict[str, Any] = field(default_factory=dict)
    precision: str = "auto"  # bf16 autocast on a GPU, fp32 on CPU
    channels_last: bool = True
    compile: str = "off"  # a torch.compile mode; "reduce-overhead" uses CUDA graphs
    context_only_edges: int = 0  # slices at each end used only as the neighbours' context (left at -1024 HU)

    @property
    def inference(self) -> InferenceOptions:
        return InferenceOptions(self.precision, self.channels_last, self.compile)

    def validated(self) -> "SynthesisSettings":
        if self.sampler not in SAMPLER_INFO:
            raise UserInputError(f"unknown sampler '{self.sampler}' (choose from {', '.join(SAMPLER_INFO)})")
        if self.steps is not None and self.steps < 1:
            raise UserInputError(f"steps must be at least 1, got {self.steps}")
        if self.mc < 1:
            raise UserInputError(f"the number of Monte-Carlo samples must be at least 1, got {self.mc}")
        if self.batch_size is not None and self.batch_size < 1:
            raise UserInputError(f"batch size must be at least 1, got {self.batch_size}")
        if self.context_only_edges < 0:
            raise UserInputError(f"context-only edge slices must be 0 or more, got {self.context_only_edges}")
        self.inference.validated()
        return self

    @property
    def resolved_steps(self) -> int:
        return self.steps if self.steps is not None else SAMPLER_INFO[self.sampler].default_steps


@dataclass
class SynthesisResult:
    ct: sitk.Image
    uncertainty: sitk.Image
    samples: list[sitk.Image]
    device: str
    device_reason: str
    sampler: str
    nfe: int
    seconds: float
    warnings: list[str]

    def summary(self) -> str:
        return (f"device {self.device}, sampler {self.sampler}, NFE per sample {self.nfe}, "
                f"{self.seconds:.1f} s")


def check_mri(mri: sitk.Image) -> list[str]:
    """Refuse unusable MRI volumes; return warnings for suspicious ones."""
    check_scalar_volume(mri, "input MRI")
    array = sitk.GetArrayViewFromImage(mri)
    if float(array.max()) == float(array.min()):
        raise UserInputError(f"input MRI is constant (every voxel is {float(array.min()):g}); nothing to convert")
    warnings = []
    if looks_like_ct(np.asarray(array)):
        warnings.append("the input looks like a CT (values in HU), not a T2-weighted MRI; the result will be meaningless")
    return warnings


def model_grid(image: sitk.Image, spacing_xy: tuple[float, float]) -> sitk.Image:
    """Resample in-plane to the model's spacing, keeping slices, direction and the first voxel's position."""
    spacing = (spacing_xy[0], spacing_xy[1], image.GetSpacing()[2])
    size = [max(1, int(round(n * s / t))) for n, s, t in zip(image.GetSize(), image.GetSpacing(), spacing)]
    size[2] = image.GetSize()[2]
    return sitk.Resample(image, size, sitk.Transform(), sitk.sitkLinear, image.GetOrigin(), spacing,
                         image.GetDirection(), 0.0, sitk.sitkFloat32)


@dataclass
class PreparedMRI:
    """An MRI on the model grid (axial order, model in-plane spacing), its body mask and unit intensities."""

    grid: sitk.Image
    mask: np.ndarray
    mri_unit: np.ndarray


def prepare_mri(mri: sitk.Image, spacing_xy: tuple[float, float], percentile: float) -> PreparedMRI:
    """Reorient to axial (LPS) order, resample in-plane, mask the body and normalise: shared by training and inference."""
    canonical = sitk.DICOMOrient(sitk.Cast(mri, sitk.sitkFloat32), "LPS")
    resampled = model_grid(canonical, spacing_xy)
    body = sitk.GetArrayFromImage(body_mask(resampled)).astype(bool)
    signal = sitk.GetArrayFromImage(foreground_mask(resampled)).astype(bool)
    return PreparedMRI(resampled, body, normalize_mri(sitk.GetArrayFromImage(resampled), signal, percentile))


def context_stack(volume: np.ndarray, indices: list[int], context: int) -> np.ndarray:
    """(len(indices), 1 + 2*context, H, W): each slice with its neighbours, edges repeated."""
    last = volume.shape[0] - 1
    return np.stack([volume[[min(max(k + d, 0), last) for d in range(-context, context + 1)]] for k in indices])


def pad_to_multiple(volume: np.ndarray, multiple: int, value: float) -> tuple[np.ndarray, tuple[int, int]]:
    """Pad the last two axes at their end to a multiple of ``multiple``."""
    height, width = volume.shape[-2:]
    pad_h, pad_w = (-height) % multiple, (-width) % multiple
    padding = [(0, 0)] * (volume.ndim - 2) + [(0, pad_h), (0, pad_w)]
    return np.pad(volume, padding, constant_values=value), (height, width)


def synthesize(mri: sitk.Image, model: LoadedModel, settings: SynthesisSettings, device: str = "auto",
               progress: ProgressCallback = no_progress, cancel: CancelToken | None = None) -> SynthesisResult:
    """Synthetic CT (mean of the Monte-Carlo samples, HU) and uncertainty (their std, HU) on the MRI's grid."""
    started = time.monotonic()
    settings = settings.validated()
    if model.kind == "regression":  # a deterministic baseline: Monte Carlo would repeat one answer
        settings = replace(settings, steps=1, mc=1, sampler_options={})
    warnings = check_mri(mri)
    choice = choose_device(device)
    configure_cpu_threads()
    network = FastNetwork(model.network, choice.device, settings.inference, warnings.append)
    sampler = get_sampler(settings.sampler)
    steps = settings.resolved_steps

    size = mri.GetSize()  # input grid: MRI, CT, uncertainty and the kept samples in float32, plus the model grid
    check_memory(size[0] * size[1] * size[2], 4 * (6 + (settings.mc if settings.keep_samples else 0)),
                 f"synthesis of a {' x '.join(map(str, size))} volume")
    prepared = prepare_mri(mri, model.spacing_mm, model.mri_percentile)
    mask = prepared.mask
    padded, (height, width) = pad_to_multiple(prepared.mri_unit, model.config.size_multiple, -1.0)
    edge = settings.context_only_edges  # symmetric, so the same slices in any slice order
    wanted = list(range(edge, padded.shape[0] - edge))
    if not wanted:
        raise UserInputError(f"no slice left to synthesize: {padded.shape[0]} slices, {edge} context-only at each end")

    def probe(count: int) -> None:
        """One forward pass of ``count`` zero inputs (to measure memory per input)."""
        with torch.inference_mode():
            inputs = torch.zeros((count, model.config.condition_channels, *padded.shape[1:]), device=choice.device)
            if model.kind == "regression":
                network(inputs)
            else:
                network(inputs[:, :1], torch.full((count,), 0.5, device=choice.device), inputs)

    batch_size = settings.batch_size or auto_batch_size(choice.device, probe, len(wanted) * settings.mc)

    def sample_volume(batch_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, int, int]:
        """Every slice's Monte-Carlo mean and std (and samples) in the model's unit range, ``batch_size``
        network inputs at a time (Monte-Carlo samples of a slice batched together)."""
        mc_chunk = min(settings.mc, batch_size)
        slices_per_batch = max(1, batch_size // mc_chunk)
        batches = [wanted[i:i + slices_per_batch] for i in range(0, len(wanted), slices_per_batch)]
        total_steps = len(batches) * math.ceil(settings.mc / mc_chunk) * steps
        done_steps = 0
        generator = new_generator(choice.device, settings.seed)
        mean_volume = np.full(padded.shape, -1.0, np.float32)
        std_volume = np.zeros(padded.shape, np.float32)
        samples_volume = np.full((settings.mc, *padded.shape), -1.0, np.float32) if settings.keep_samples else None
        nfe = 0

        def on_step(step: int, total: int, x0: torch.Tensor) -> None:
            progress(min(done_steps + step, total_steps), total_steps, f"{settings.sampler} step {step}/{total}")

        with torch.inference_mode():
            for indices in batches:
                condition = torch.from_numpy(context_stack(padded, indices, model.config.context_slices)).to(choice.device)

                def draw(count: int) -> tuple[torch.Tensor, int]:
                    nonlocal done_steps
                    repeated = condition.repeat(count, 1, 1, 1)
                    if settings.channels_last:  # once here, not at every network evaluation
                        repeated = channels_last(repeated)
                    raise_if_simulated_out_of_memory(repeated.shape[0])
                    if model.kind == "regression":  # CNN / GAN baselines: one deterministic pass
                        sample, nfe_per_sample = network(repeated).clamp(-1.0, 1.0), 1
                    else:
                        result = sampler(network, repeated, model.network.process, steps=steps,
                                         generator=generator, callback=on_step, cancel=cancel,
                                         **settings.sampler_options)
                        sample, nfe_per_sample = result.sample, result.nfe
                    done_steps += steps
                    return sample.reshape(count, len(indices), *sample.shape[1:]), nfe_per_sample

                outcome = monte_carlo(draw, settings.mc, mc_chunk, keep_samples=settings.keep_samples)
                nfe = outcome.nfe
                mean_volume[indices] = outcome.mean[:, 0].float().cpu().numpy()
                std_volume[indices] = outcome.std[:, 0].float().cpu().numpy()
                if samples_volume is not None:
                    samples_volume[:, indices] = torch.stack(outcome.samples)[:, :, 0].float().cpu().numpy()
        return mean_volume, std_volume, samples_volume, nfe, total_steps

    def note_retry(old: int, new: int) -> None:
        warnings.append(f"out of memory with a batch of {old}; retried with {new}")

    mean_volume, std_volume, samples_volume, nfe, total_steps = run_with_batch_retry(
        sample_volume, batch_size, note_retry)
    progress(total_steps, total_steps, "resampling to the input grid")

    def to_input_grid(unit_volume: np.ndarray, is_std: bool) -> sitk.Image:
        values = unit_std_to_hu(unit_volume) if is_std else unit_to_hu(unit_volume)
        values = np.where(mask, values[:, :height, :width], 0.0 if is_std else HU_MIN).astype(np.float32)
        image = sitk.GetImageFromArray(values)
        image.CopyInformation(prepared.grid)
        return sitk.Resample(image, mri, sitk.Transform(), sitk.sitkLinear, 0.0 if is_std else HU_MIN, sitk.sitkFloat32)

    ct = to_input_grid(mean_volume, False)
    uncertainty = to_input_grid(std_volume, True)
    samples = [to_input_grid(s, False) for s in samples_volume] if samples_volume is not None else []
    method = settings.sampler if model.kind == "diffusion" else str(model.metadata.get("method", model.kind))
    return SynthesisResult(ct, uncertainty, samples, choice.device, choice.reason, method, nfe,
                           time.monotonic() - started, warnings)
