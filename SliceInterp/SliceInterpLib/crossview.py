"""Cross-view slice interpolation of a volume: the three views' predictions, their mean and disagreement.

A volume here is a (Z, Y, X) tensor on the networks' intensity scale, Z being the
slice axis. One level doubles the slices: every gap between observed slices gets
the slice half-way across it, predicted by the axial view (from the slices around
the gap), the coronal view and the sagittal view (super-resolution of the (Z, X)
and (Z, Y) images along z). Factor 2^n takes n levels (incremental, as in Fang et
al. 2022); other factors resample the finest level linearly.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import SimpleITK as sitk
import torch

from CTSynthesisCore.acceleration import autocast, auto_batch_size
from CTSynthesisCore.device import raise_if_simulated_out_of_memory
from CTSynthesisCore.progress import CancelToken, ProgressCallback, no_progress

from .classical import cast_like, finer_grid
from .networks import INTENSITY, CrossViewNet
from .catalog import CPU_BATCH_SIZE

BatchDone = Callable[[int], None]


def axial_neighbours(volume: torch.Tensor, gaps: torch.Tensor, neighbours: int) -> torch.Tensor:
    """(B, 2n, Y, X) observed slices around each gap (gap i lies between slices i and i + 1), edges repeated."""
    offsets = torch.arange(1 - neighbours, neighbours + 1, device=volume.device)
    indices = (gaps.to(volume.device)[:, None] + offsets).clamp(0, volume.shape[0] - 1)
    return volume[indices]


def _in_batches(function: Callable[[torch.Tensor], torch.Tensor], count: int, batch_size: int | None,
               done: BatchDone | None, device: torch.device) -> torch.Tensor:
    batch_size = batch_size or count
    parts = []
    for start in range(0, count, batch_size):
        indices = torch.arange(start, min(start + batch_size, count), device=device)
        raise_if_simulated_out_of_memory(len(indices))
        parts.append(function(indices))
        if done is not None:
            done(len(indices))
    return torch.cat(parts)


def view_predictions(network: CrossViewNet, volume: torch.Tensor, batch_size: int | None = None,
                     done: BatchDone | None = None, output_device: str | torch.device | None = None) -> torch.Tensor:
    """(3, Z - 1, Y, X) mid-gap slices predicted by the axial, coronal and sagittal views.

    ``batch_size`` bounds how many images one forward pass takes; ``done(k)`` is called
    after each batch of ``k`` images (3 * ... images in all, see :func:`images_per_level`).
    """
    depth, height, width = volume.shape
    output_device = output_device or volume.device
    neighbours = network.config.neighbours

    def axial(gaps: torch.Tensor) -> torch.Tensor:
        return network.axial_midslices(axial_neighbours(volume, gaps, neighbours)).float().to(output_device)

    def coronal(rows: torch.Tensor) -> torch.Tensor:
        return network.planar_midrows(volume[:, rows].transpose(0, 1)).float().to(output_device)

    def sagittal(columns: torch.Tensor) -> torch.Tensor:
        return network.planar_midrows(volume[:, :, columns].permute(2, 0, 1)).float().to(output_device)

    return torch.stack([
        _in_batches(axial, depth - 1, batch_size, done, volume.device),
        _in_batches(coronal, height, batch_size, done, volume.device).transpose(0, 1),
        _in_batches(sagittal, width, batch_size, done, volume.device).permute(1, 2, 0),
    ])


def images_per_level(shape: tuple[int, int, int]) -> int:
    """Network input images of one level on a (Z, Y, X) volume (for progress)."""
    return shape[0] - 1 + shape[1] + shape[2]


def interleave(observed: torch.Tensor, between: torch.Tensor) -> torch.Tensor:
    """(Z, ...) and (Z - 1, ...) -> (2Z - 1, ...) with the observed slices at even indices."""
    result = observed.new_empty((2 * observed.shape[0] - 1, *observed.shape[1:]))
    result[0::2], result[1::2] = observed, between
    return result


def refine_level(network: CrossViewNet, volume: torch.Tensor, batch_size: int | None = None,
                 done: BatchDone | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One x2 level: the finer volume (mean of the views between observed slices) and the views' std."""
    axial, coronal, sagittal = view_predictions(network, volume, batch_size, done, output_device="cpu")
    mean = (axial + coronal + sagittal) / 3
    disagreement = (((axial - mean).square() + (coronal - mean).square() + (sagittal - mean).square()) / 3).sqrt()
    observed = volume.cpu()
    return interleave(observed, mean), interleave(torch.zeros_like(observed), disagreement)


@dataclass
class CrossViewResult:
    """Finer volume (pixel type of the input) and the views' disagreement (HU, float32), same grid."""

    image: sitk.Image
    disagreement: sitk.Image
    levels: int


def levels_for(ratio: float) -> int:
    """x2 levels needed to reach at least ``ratio`` times more slices."""
    return max(1, math.ceil(math.log2(ratio) - 1e-9))


def _image_like(values: np.ndarray, reference: sitk.Image, spacing: float) -> sitk.Image:
    image = sitk.GetImageFromArray(values)
    image.SetOrigin(reference.GetOrigin())
    image.SetDirection(reference.GetDirection())
    image.SetSpacing((*reference.GetSpacing()[:2], spacing))
    return image


def inference_network(network: CrossViewNet, device: str) -> CrossViewNet:
    """A copy of ``network`` ready for inference on ``device`` (PReLU fused, eval mode)."""
    return copy.deepcopy(network).fused_for_inference().eval().to(device)


def automatic_batch_size(network: CrossViewNet, image: sitk.Image, device: str, precision: str = "auto") -> int:
    """Images per network pass: from free GPU memory (probed with axial slices and with planar images as tall as
    a x4 level), 16 on CPU."""
    width, height, depth = image.GetSize()

    def probe(count: int) -> None:
        probed = inference_network(network, device)
        with torch.inference_mode(), autocast(device, precision):
            probed.axial_midslices(torch.zeros(count, 2 * probed.config.neighbours, height, width, device=device))
            probed.planar_midrows(torch.zeros(count, 4 * depth, max(height, width), device=device))

    return auto_batch_size(device, probe, max(height, width), cpu_default=CPU_BATCH_SIZE)


def upsample_crossview(image: sitk.Image, slice_spacing: float, network: CrossViewNet, device: str = "cpu",
                       batch_size: int = CPU_BATCH_SIZE, progress: ProgressCallback = no_progress,
                       cancel: CancelToken | None = None, precision: str = "auto") -> CrossViewResult:
    """Interpolate slices every ``slice_spacing`` mm along the slice axis; observed slices pass unchanged.

    ``precision`` auto runs the networks under bf16 autocast on a GPU, in fp32 on CPU.
    """
    source = sitk.GetArrayFromImage(image)
    ratio = image.GetSpacing()[2] / slice_spacing
    levels = levels_for(ratio)
    network = inference_network(network, device)
    volume = INTENSITY.to_network(torch.from_numpy(source.astype(np.float32))).to(device)
    disagreement = torch.zeros_like(volume, device="cpu")
    total, finished = 0, 0
    shape = list(volume.shape)
    for _ in range(levels):
        total += images_per_level(tuple(shape))
        shape[0] = 2 * shape[0] - 1

    def done(count: int) -> None:
        nonlocal finished
        finished += count
        progress(finished, total, "cross-view network")
        if cancel is not None:
            cancel.raise_if_set()

    with torch.inference_mode(), autocast(device, precision):
        for _ in range(levels):
            finer, level_disagreement = refine_level(network, volume, batch_size, done)
            carried = interleave(disagreement, torch.zeros_like(level_disagreement[1::2]))
            disagreement = torch.maximum(carried, level_disagreement)
            volume = finer.to(device)
    fine_spacing = image.GetSpacing()[2] / 2**levels
    values = (volume.cpu().numpy() * INTENSITY.scale).astype(np.float32)
    values[:: 2**levels] = source  # observed slices exactly, also beyond the networks' HU range
    disagreement_hu = disagreement.numpy() * INTENSITY.scale
    fine = _image_like(values, image, fine_spacing)
    disagreement_image = _image_like(disagreement_hu.astype(np.float32), image, fine_spacing)
    if abs(fine_spacing - slice_spacing) > 1e-6 * slice_spacing:  # factors other than 2^n: linear in between
        fine, disagreement_image = (sitk.Resample(item, finer_grid(item, slice_spacing), sitk.Transform(),
                                                  sitk.sitkLinear, 0.0, sitk.sitkFloat32)
                                    for item in (fine, disagreement_image))
        values, disagreement_hu = sitk.GetArrayFromImage(fine), sitk.GetArrayFromImage(disagreement_image)
        if abs(ratio - round(ratio)) < 1e-6:  # observed slices exact again, with no disagreement
            values[:: round(ratio)], disagreement_hu[:: round(ratio)] = source, 0
            disagreement_image = _image_like(disagreement_hu, image, slice_spacing)
    output = sitk.GetImageFromArray(cast_like(values, source.dtype))
    output.CopyInformation(fine)
    return CrossViewResult(output, disagreement_image, levels)

