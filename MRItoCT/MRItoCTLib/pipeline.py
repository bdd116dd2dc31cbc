"""Volume pipeline: 3D MRI in, synthetic CT (HU) and Monte-Carlo uncertainty out, on the input's grid.

Reorient to axial order, resample in-plane to the model's spacing, normalise the
MRI, sample slice batches (Monte-Carlo samples batched together), map to HU, set
air outside the body, warn when the CT shows no hip bones, and resample back to exactly the input grid.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import numpy as np
import SimpleITK as sitk
import torch

from CTSynthesisCore.acceleration import FastNetwork, auto_batch_size, channels_last, configure_cpu_threads
from CTSynthesisCore.device import DEFAULT_DEVICE, choose_device, raise_if_simulated_out_of_memory, run_with_batch_retry
from CTSynthesisCore.errors import UserInputError
from CTSynthesisCore.hounsfield import AIR_HU
from CTSynthesisCore.progress import CancelToken, ProgressCallback, no_progress
from CTSynthesisCore.volume_io import check_memory, check_scalar_volume

from .acquisition import acquisition_warnings, image_header
from .anatomy import anatomy_warnings
from .intensity import IntensityMapping, body_mask, foreground_mask, looks_like_ct
from .model import LoadedModel, new_generator
from .model_types import Draw
from .samplers import SliceSharedNoise
from .montecarlo import monte_carlo
from .settings import SynthesisSettings


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
    """Refuse unusable MRI volumes; return warnings for suspicious ones (by their DICOM header, if any, and values)."""
    check_scalar_volume(mri, "input MRI")
    array = sitk.GetArrayViewFromImage(mri)
    if float(array.max()) == float(array.min()):
        raise UserInputError(f"input MRI is constant (every voxel is {float(array.min()):g}); nothing to convert")
    warnings = acquisition_warnings(image_header(mri))
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


def prepare_mri(mri: sitk.Image, spacing_xy: tuple[float, float], intensity: IntensityMapping) -> PreparedMRI:
    """Reorient to axial (LPS) order, resample in-plane, mask the body and normalise: shared by training and inference."""
    canonical = sitk.DICOMOrient(sitk.Cast(mri, sitk.sitkFloat32), "LPS")
    resampled = model_grid(canonical, spacing_xy)
    body = sitk.GetArrayFromImage(body_mask(resampled)).astype(bool)
    signal = sitk.GetArrayFromImage(foreground_mask(resampled)).astype(bool)
    return PreparedMRI(resampled, body, intensity.normalize_mri(sitk.GetArrayFromImage(resampled), signal))


def context_stack(volume: np.ndarray, indices: list[int], context: int) -> np.ndarray:
    """(len(indices), 1 + 2*context, H, W): each slice with its neighbours, edges repeated."""
    last = volume.shape[0] - 1
    return np.stack([volume[[min(max(k + d, 0), last) for d in range(-context, context + 1)]] for k in indices])


def reflected_positions(length: int, size: int, offset: int) -> np.ndarray:
    """The image pixel each of ``length`` positions of a frame shows when an image of ``size`` pixels starts at
    ``offset``: the image itself, and beyond its edges the image mirrored about its edge pixels."""
    if size == 1:
        return np.zeros(length, dtype=np.int64)
    period = 2 * (size - 1)
    folded = (np.arange(length) - offset) % period
    return np.where(folded < size, folded, period - folded)


def framed(images, frame: tuple[int, int], offset: int = 0):
    """``images`` (..., H, W; numpy or torch) placed at ``offset`` along both axes of a ``frame``-sized image, the
    rest of the frame filled by mirroring: a body that the field of view cuts continues past the cut, as in the
    training crops, instead of meeting a band of air the networks never saw there."""
    rows = reflected_positions(frame[0], images.shape[-2], offset)
    columns = reflected_positions(frame[1], images.shape[-1], offset)
    if isinstance(images, torch.Tensor):
        rows, columns = torch.from_numpy(rows).to(images.device), torch.from_numpy(columns).to(images.device)
    return images[..., rows, :][..., columns]


def pad_to_multiple(volume: np.ndarray, multiple: int, margin: int = 0) -> tuple[np.ndarray, tuple[int, int]]:
    """Pad the last two axes at their end (by mirroring, ``framed``) to a multiple of ``multiple``, with at least
    ``margin`` of padding."""
    height, width = volume.shape[-2:]
    frame = (height + margin + (-(height + margin)) % multiple, width + margin + (-(width + margin)) % multiple)
    return np.ascontiguousarray(framed(volume, frame)), (height, width)


def settings_for_model(settings: SynthesisSettings, model: LoadedModel) -> SynthesisSettings:
    """A deterministic model (the CNN and GAN baselines) runs once: Monte Carlo would repeat one answer."""
    if model.kind.stochastic:
        return settings
    return replace(settings, steps=1, mc=1, sampler_options={})


def check_synthesis_memory(mri: sitk.Image, settings: SynthesisSettings) -> None:
    """Refuse a volume whose outputs cannot fit: MRI, CT, uncertainty and kept samples in float32, plus the model grid."""
    size = mri.GetSize()
    check_memory(size[0] * size[1] * size[2], 4 * (6 + (settings.mc if settings.keep_samples else 0)),
                 f"synthesis of a {' x '.join(map(str, size))} volume")


def slices_to_synthesize(count: int, context_only_edges: int) -> list[int]:
    """The slices sampled: all but ``context_only_edges`` at each end (symmetric, so the same in any slice order)."""
    wanted = list(range(context_only_edges, count - context_only_edges))
    if not wanted:
        raise UserInputError(f"no slice left to synthesize: {count} slices, {context_only_edges} context-only at each end")
    return wanted


MIRRORINGS = ((), (-1,), (-2,))  # axes of a (..., H, W) axial batch: as is, left-right (x), anterior-posterior (y)


def sample_mirrorings(first: int, count: int, test_time_flips: bool) -> list[tuple[int, ...]]:
    """The axes each of Monte-Carlo samples ``first``..``first+count-1`` is mirrored along (test-time augmentation,
    Wang et al. 2019): the MRI as is, mirrored left-right, mirrored anterior-posterior, in turn."""
    return [MIRRORINGS[index % len(MIRRORINGS)] if test_time_flips else () for index in range(first, first + count)]


def transformed_copies(batch: torch.Tensor, per_copy: list, transform: Callable[[torch.Tensor, Any], torch.Tensor]
                       ) -> torch.Tensor:
    """``transform(block, value)`` on each copy's equal block of rows of ``batch``, with that copy's value in
    ``per_copy``; a copy whose value is empty or zero stays as it is, and with none to transform ``batch`` itself."""
    if not any(per_copy):
        return batch
    blocks = batch.chunk(len(per_copy))
    return torch.cat([transform(block, value) if value else block for block, value in zip(blocks, per_copy)])


def mirror_copies(batch: torch.Tensor, mirrorings: list[tuple[int, ...]]) -> torch.Tensor:
    """Mirror each copy's equal block of rows of ``batch`` along its axes (a mirroring undoes itself)."""
    return transformed_copies(batch, mirrorings, lambda block, axes: block.flip(axes))


SHIFT_FRACTIONS = (0.0, 0.5, 0.25, 0.75)  # of the network's size multiple, in turn


def sample_shifts(first: int, count: int, multiple: int, test_time_shifts: bool) -> list[int]:
    """The in-plane shift in pixels (along both axes) of Monte-Carlo samples ``first``..``first+count-1``: 0, 1/2,
    1/4 and 3/4 of the network's size multiple in turn, so its strided downsampling sees each sample at another
    phase of the image grid."""
    return [int(SHIFT_FRACTIONS[index % len(SHIFT_FRACTIONS)] * multiple) if test_time_shifts else 0
            for index in range(first, first + count)]


def largest_shift(mc: int, multiple: int, test_time_shifts: bool) -> int:
    """The margin the padded MRI needs so that every sample's shifted image still fits in it."""
    return max(sample_shifts(0, mc, multiple, test_time_shifts))


def shifted_copies(batch: torch.Tensor, shifts: list[int], image_size: tuple[int, int]) -> torch.Tensor:
    """Each copy's equal block of rows of ``batch`` (padded images whose first ``image_size`` pixels are the image)
    with its image moved by its shift along both in-plane axes, the frame refilled by mirroring (``framed``)."""
    height, width = image_size
    return transformed_copies(batch, shifts,
                              lambda block, shift: framed(block[..., :height, :width], block.shape[-2:], shift))


def unshifted_copies(batch: torch.Tensor, shifts: list[int]) -> torch.Tensor:
    """Each copy's block moved back by its shift, so that its image starts at the first pixel again."""
    return transformed_copies(batch, shifts, lambda block, shift: block.roll((-shift, -shift), (-2, -1)))


@dataclass
class SampledVolume:
    """Every slice's Monte-Carlo mean and standard deviation (and the samples) in the model's unit range."""

    mean: np.ndarray
    std: np.ndarray
    samples: np.ndarray | None
    nfe: int
    total_steps: int


@dataclass
class VolumeSampling:
    """Sampling the wanted slices of a padded unit MRI, ``batch_size`` network inputs at a time, the Monte-Carlo
    samples of a slice batched together."""

    model: LoadedModel
    network: FastNetwork
    padded: np.ndarray
    image_size: tuple[int, int]  # the image's pixels at the start of each padded slice
    wanted: list[int]
    settings: SynthesisSettings
    device: str
    progress: ProgressCallback = no_progress
    cancel: CancelToken | None = None
    done_steps: int = field(default=0, init=False)  # sampler steps finished in this run, for progress

    def probe(self, count: int) -> None:
        """One forward pass of ``count`` zero inputs (to measure memory per input)."""
        with torch.inference_mode():
            inputs = torch.zeros((count, self.model.config.condition_channels, *self.padded.shape[1:]), device=self.device)
            self.model.kind.probe(self.network, inputs)

    def run(self, batch_size: int) -> SampledVolume:
        settings, steps = self.settings, self.settings.resolved_steps
        mc_per_pass = min(settings.mc, batch_size)
        slices_per_batch = max(1, batch_size // mc_per_pass)
        batches = [self.wanted[i:i + slices_per_batch] for i in range(0, len(self.wanted), slices_per_batch)]
        total_steps = len(batches) * math.ceil(settings.mc / mc_per_pass) * steps
        self.done_steps = 0
        shared = settings.slice_noise == "shared"
        generator = None if shared else new_generator(self.device, settings.seed)  # one stream over all batches
        mean = np.full(self.padded.shape, -1.0, np.float32)
        std = np.zeros(self.padded.shape, np.float32)
        samples = np.full((settings.mc, *self.padded.shape), -1.0, np.float32) if settings.keep_samples else None

        def on_step(step: int, total: int, x0: torch.Tensor) -> None:
            self.progress(min(self.done_steps + step, total_steps), total_steps, f"{settings.sampler} step {step}/{total}")

        draw = Draw(settings.sampler, steps, settings.sampler_options, generator, on_step, self.cancel)
        nfe = 0
        with torch.inference_mode():
            for indices in batches:
                if shared:  # every batch replays the same draws: one noise per Monte-Carlo sample
                    draw.generator = SliceSharedNoise(new_generator(self.device, settings.seed), len(indices))
                condition = torch.from_numpy(context_stack(self.padded, indices, self.model.config.context_slices))
                condition = condition.to(self.device)
                outcome = monte_carlo(lambda first, count: self.draw_batch(condition, first, count, len(indices), draw),
                                      settings.mc, mc_per_pass, keep_samples=settings.keep_samples)
                nfe = outcome.nfe
                mean[indices] = outcome.mean[:, 0].float().cpu().numpy()
                std[indices] = outcome.std[:, 0].float().cpu().numpy()
                if samples is not None:
                    samples[:, indices] = torch.stack(outcome.samples)[:, :, 0].float().cpu().numpy()
        return SampledVolume(mean, std, samples, nfe, total_steps)

    def draw_batch(self, condition: torch.Tensor, first: int, count: int, slices: int,
                   draw: Draw) -> tuple[torch.Tensor, int]:
        """Samples ``first``..``first+count-1`` of each slice of ``condition``, stacked as (count, slices, ...), and
        the NFE per sample."""
        mirrorings = sample_mirrorings(first, count, self.settings.test_time_flips)
        shifts = sample_shifts(first, count, self.model.config.size_multiple, self.settings.test_time_shifts)
        repeated = mirror_copies(shifted_copies(condition.repeat(count, 1, 1, 1), shifts, self.image_size), mirrorings)
        if self.settings.channels_last:  # once here, not at every network evaluation
            repeated = channels_last(repeated)
        raise_if_simulated_out_of_memory(repeated.shape[0])
        draw.copies = count
        sample, nfe = self.model.kind.draw(self.network, self.model.network, repeated, draw)
        self.done_steps += draw.steps
        restored = unshifted_copies(mirror_copies(sample, mirrorings), shifts)
        return restored.reshape(count, slices, *sample.shape[1:]), nfe


@dataclass
class InputGrid:
    """Model-grid volumes in the unit range back to HU on the input MRI's grid, air (or zero spread) outside the body."""

    mri: sitk.Image
    prepared: PreparedMRI
    height: int
    width: int
    intensity: IntensityMapping

    def hu_on_model_grid(self, unit_volume: np.ndarray) -> np.ndarray:
        """HU on the model grid (axial, LPS order, unpadded), air outside the body."""
        return self._masked(self.intensity.unit_to_hu(unit_volume), AIR_HU)

    def hu(self, unit_volume: np.ndarray) -> sitk.Image:
        return self.on_input_grid(self.hu_on_model_grid(unit_volume), AIR_HU)

    def spread(self, unit_std: np.ndarray) -> sitk.Image:
        return self.on_input_grid(self._masked(self.intensity.unit_std_to_hu(unit_std), 0.0), 0.0)

    def _masked(self, values: np.ndarray, outside: float) -> np.ndarray:
        return np.where(self.prepared.mask, values[:, :self.height, :self.width], outside).astype(np.float32)

    def on_input_grid(self, values: np.ndarray, outside: float) -> sitk.Image:
        """A model-grid volume (``_masked``) resampled onto the input MRI's grid."""
        image = sitk.GetImageFromArray(values)
        image.CopyInformation(self.prepared.grid)
        return sitk.Resample(image, self.mri, sitk.Transform(), sitk.sitkLinear, outside, sitk.sitkFloat32)


def synthesize(mri: sitk.Image, model: LoadedModel, settings: SynthesisSettings, device: str = DEFAULT_DEVICE,
               progress: ProgressCallback = no_progress, cancel: CancelToken | None = None) -> SynthesisResult:
    """Synthetic CT (mean of the Monte-Carlo samples, HU) and uncertainty (their std, HU) on the MRI's grid."""
    started = time.monotonic()
    settings = settings_for_model(settings.validated(), model)
    warnings = check_mri(mri)
    choice = choose_device(device)
    configure_cpu_threads()
    network = FastNetwork(model.network, choice.device, settings.inference, warnings.append)
    check_synthesis_memory(mri, settings)
    prepared = prepare_mri(mri, model.spacing_mm, model.intensity)
    multiple = model.config.size_multiple
    margin = largest_shift(settings.mc, multiple, settings.test_time_shifts)
    padded, (height, width) = pad_to_multiple(prepared.mri_unit, multiple, margin)
    wanted = slices_to_synthesize(padded.shape[0], settings.context_only_edges)
    sampling = VolumeSampling(model, network, padded, (height, width), wanted, settings, choice.device, progress,
                              cancel)
    batch_size = settings.batch_size or auto_batch_size(choice.device, sampling.probe, len(wanted) * settings.mc)
    sampled = run_with_batch_retry(sampling.run, batch_size, lambda old, new: warnings.append(
        f"out of memory with a batch of {old}; retried with {new}"))
    progress(sampled.total_steps, sampled.total_steps, "resampling to the input grid")
    grid = InputGrid(mri, prepared, height, width, model.intensity)
    ct_model_grid = grid.hu_on_model_grid(sampled.mean)
    warnings.extend(anatomy_warnings(ct_model_grid, prepared.grid.GetSpacing()[:2]))
    samples = [grid.hu(sample) for sample in sampled.samples] if sampled.samples is not None else []
    method = settings.sampler if model.kind.stochastic else str(model.metadata.get("method", model.kind.name))
    return SynthesisResult(grid.on_input_grid(ct_model_grid, AIR_HU), grid.spread(sampled.std), samples, choice.device,
                           choice.reason, method, sampled.nfe, time.monotonic() - started, warnings)
