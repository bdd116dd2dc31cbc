"""Cross-view slice interpolation of a volume: the three views' predictions, their mean and disagreement.

A volume here is a (Z, Y, X) tensor on the networks' intensity scale, Z being the
slice axis. One level doubles the slices: every gap between observed slices gets
the slice half-way across it, predicted by the axial view (from the slices around
the gap), the coronal view and the sagittal view (super-resolution of the (Z, X)
and (Z, Y) images along z), and made the mean of the views weighted by the model's
``view_weights`` (a view of weight 0 is not run). Factor 2^n takes n levels
(incremental, as in Fang et al. 2022). Any other factor or spacing takes the networks
at the new slices' positions in their gaps (one pass per new slice of a gap: x3 takes
two), for models with position input; older models resample the finest level linearly.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Callable, Sequence

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
VIEW_NAMES = ("axial", "coronal", "sagittal")
ALL_VIEWS = (0, 1, 2)


def clamped_windows(centres: torch.Tensor, offsets: torch.Tensor, size: int) -> torch.Tensor:
    """(B, K) indices ``centres[:, None] + offsets`` clamped to [0, size - 1]: windows whose edges repeat."""
    return (centres.to(offsets.device)[:, None] + offsets).clamp(0, size - 1)


def axial_neighbours(volume: torch.Tensor, gaps: torch.Tensor, neighbours: int) -> torch.Tensor:
    """(B, 2n, Y, X) observed slices around each gap (gap i lies between slices i and i + 1), edges repeated."""
    offsets = torch.arange(1 - neighbours, neighbours + 1, device=volume.device)
    return volume[clamped_windows(gaps, offsets, volume.shape[0])]


def plane_stacks(volume: torch.Tensor, indices: torch.Tensor, axis: int, context: int) -> torch.Tensor:
    """(B, 2c + 1, H, W) stacks of the planes ``indices`` (B,) along ``axis`` of a (Z, Y, X) volume, each with its
    ``context`` neighbours on each side (edges repeated): axial (0) planes are (Y, X), coronal (1) ones (Z, X) and
    sagittal (2) ones (Z, Y)."""
    offsets = torch.arange(-context, context + 1, device=volume.device)
    planes = clamped_windows(indices, offsets, volume.shape[axis])
    if axis == 0:
        return volume[planes]
    if axis == 1:
        return volume[:, planes].permute(1, 2, 0, 3)
    return volume[:, :, planes].permute(2, 3, 0, 1)


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
                     done: BatchDone | None = None, output_device: str | torch.device | None = None,
                     position: torch.Tensor | None = None, views: Sequence[int] = ALL_VIEWS) -> torch.Tensor:
    """(V, Z - 1, Y, X) slices predicted in every gap by each of ``views`` (0 axial, 1 coronal, 2 sagittal;
    default all three), at ``position`` (Z - 1,) across each gap (default: half-way).

    ``batch_size`` bounds how many images one forward pass takes; ``done(k)`` is called
    after each batch of ``k`` images (see :func:`images_per_level`).
    """
    depth, height, width = volume.shape
    output_device = output_device or volume.device
    neighbours = network.config.neighbours
    if position is not None:
        position = position.to(volume.device)

    def axial(gaps: torch.Tensor) -> torch.Tensor:
        at = None if position is None else position[gaps]
        return network.axial_between(axial_neighbours(volume, gaps, neighbours), at).float().to(output_device)

    def planar(axis: int) -> Callable[[torch.Tensor], torch.Tensor]:
        def predict(planes: torch.Tensor) -> torch.Tensor:
            stacks = plane_stacks(volume, planes, axis, network.config.planar_context)
            return network.planar_between(stacks, position).float().to(output_device)
        return predict

    predict = (lambda: _in_batches(axial, depth - 1, batch_size, done, volume.device),
               lambda: _in_batches(planar(1), height, batch_size, done, volume.device).transpose(0, 1),
               lambda: _in_batches(planar(2), width, batch_size, done, volume.device).permute(1, 2, 0))
    return torch.stack([predict[view]() for view in views])


def images_per_level(shape: tuple[int, int, int], views: Sequence[int] = ALL_VIEWS) -> int:
    """Network input images of one level of ``views`` on a (Z, Y, X) volume (for progress)."""
    return sum((shape[0] - 1, shape[1], shape[2])[view] for view in views)


def interleave(observed: torch.Tensor, between: torch.Tensor) -> torch.Tensor:
    """(Z, ...) and (Z - 1, ...) -> (2Z - 1, ...) with the observed slices at even indices."""
    result = observed.new_empty((2 * observed.shape[0] - 1, *observed.shape[1:]))
    result[0::2], result[1::2] = observed, between
    return result


def mean_and_disagreement(views: torch.Tensor, weights: Sequence[float]) -> tuple[torch.Tensor, torch.Tensor]:
    """The views' mean weighted by ``weights`` (normalised): the new slices; and their standard deviation
    (unweighted): the disagreement."""
    shares = torch.tensor(weights, dtype=views.dtype, device=views.device) / sum(weights)
    mean = (views * shares.view(-1, *[1] * (views.dim() - 1))).sum(dim=0)
    return mean, (views - views.mean(dim=0)).square().mean(dim=0).sqrt()


def fused_views(network: CrossViewNet, volume: torch.Tensor, batch_size: int | None = None,
                done: BatchDone | None = None, position: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """The new slice in every gap (the weighted mean of the views the model uses) and their disagreement, on the
    CPU: the views of weight 0 are not run."""
    used = network.config.used_views
    views = view_predictions(network, volume, batch_size, done, "cpu", position, used)
    return mean_and_disagreement(views, [network.config.view_weights[view] for view in used])


def refine_level(network: CrossViewNet, volume: torch.Tensor, batch_size: int | None = None,
                 done: BatchDone | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One x2 level: the finer volume (the views' weighted mean between observed slices) and the views' std."""
    mean, disagreement = fused_views(network, volume, batch_size, done)
    observed = volume.cpu()
    return interleave(observed, mean), interleave(torch.zeros_like(observed), disagreement)


@dataclass
class GapPass:
    """One pass of the networks over every gap: the position of the new slice in each gap (0.5 where a gap has
    nothing left to predict) and the output slice it becomes (-1: none)."""

    positions: np.ndarray
    outputs: np.ndarray


def output_positions(depth: int, ratio: float) -> np.ndarray:
    """Where the slices of the finer grid lie, in observed-slice units (slice ``k`` at ``k / ratio``), for a grid
    as :func:`~SliceInterpLib.classical.finer_grid` makes it."""
    count = int(np.floor((depth - 1) * ratio + 1e-6)) + 1
    return np.minimum(np.arange(count) / ratio, depth - 1)


def observed_slices(depth: int, ratio: float) -> np.ndarray:
    """For each slice of the finer grid of ``ratio`` times more slices, the observed slice it is (-1: a new one)."""
    where = output_positions(depth, ratio)
    nearest = np.rint(where)
    return np.where(np.abs(where - nearest) < 1e-6, nearest, -1).astype(int)


def gap_passes(depth: int, ratio: float) -> list[GapPass]:
    """The passes over the gaps that predict the new slices of the finer grid of ``ratio`` times more slices
    (pass m: the m-th new slice of each gap)."""
    where = output_positions(depth, ratio)
    new = np.flatnonzero(observed_slices(depth, ratio) < 0)
    gaps = np.minimum(np.floor(where[new]).astype(int), depth - 2)
    rank = np.zeros(len(new), dtype=int)
    for index in range(1, len(new)):
        rank[index] = rank[index - 1] + 1 if gaps[index] == gaps[index - 1] else 0
    passes = []
    for m in range(int(rank.max()) + 1 if len(new) else 0):
        chosen = rank == m
        positions, outputs = np.full(depth - 1, 0.5), np.full(depth - 1, -1)
        positions[gaps[chosen]] = where[new[chosen]] - gaps[chosen]
        outputs[gaps[chosen]] = new[chosen]
        passes.append(GapPass(positions, outputs))
    return passes


def fractional_slices(network: CrossViewNet, volume: torch.Tensor, ratio: float, batch_size: int | None = None,
                      done: BatchDone | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The finer grid of ``ratio`` (any value above 1) in one step: observed slices where the grid meets them, the
    views' mean at every other slice's position in its gap; and the views' disagreement (0 on observed slices)."""
    observed = observed_slices(volume.shape[0], ratio)
    values = torch.zeros((len(observed), *volume.shape[1:]))
    disagreement = torch.zeros_like(values)
    copies = np.flatnonzero(observed >= 0)
    values[copies] = volume[torch.from_numpy(observed[copies])].cpu().float()
    for gap_pass in gap_passes(volume.shape[0], ratio):
        mean, spread = fused_views(network, volume, batch_size, done, torch.from_numpy(gap_pass.positions))
        used = np.flatnonzero(gap_pass.outputs >= 0)
        targets = torch.from_numpy(gap_pass.outputs[used])
        values[targets], disagreement[targets] = mean[used], spread[used]
    return values, disagreement


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
            probed.axial_between(torch.zeros(count, 2 * probed.config.neighbours, height, width, device=device))
            probed.planar_between(torch.zeros(count, probed.config.planar_planes, 4 * depth, max(height, width),
                                              device=device))

    return auto_batch_size(device, probe, max(height, width), cpu_default=CPU_BATCH_SIZE)


def uses_levels(network: CrossViewNet, ratio: float) -> bool:
    """Whether ``ratio`` is reached by x2 levels: a power of two, or any ratio for a model without position input."""
    return not network.config.position_input or abs(2 ** round(math.log2(ratio)) - ratio) < 1e-6 * ratio


def images_to_process(network: CrossViewNet, shape: tuple[int, int, int], ratio: float) -> int:
    """Network input images of a whole upsampling (for progress)."""
    views = network.config.used_views
    if not uses_levels(network, ratio):
        return len(gap_passes(shape[0], ratio)) * images_per_level(shape, views)
    total, depth = 0, shape[0]
    for _ in range(levels_for(ratio)):
        total += images_per_level((depth, *shape[1:]), views)
        depth = 2 * depth - 1
    return total


def upsample_crossview(image: sitk.Image, slice_spacing: float, network: CrossViewNet, device: str = "cpu",
                       batch_size: int = CPU_BATCH_SIZE, progress: ProgressCallback = no_progress,
                       cancel: CancelToken | None = None, precision: str = "auto") -> CrossViewResult:
    """Interpolate slices every ``slice_spacing`` mm along the slice axis; observed slices pass unchanged.

    ``precision`` auto runs the networks under bf16 autocast on a GPU, in fp32 on CPU.
    """
    source = sitk.GetArrayFromImage(image)
    ratio = image.GetSpacing()[2] / slice_spacing
    network = inference_network(network, device)
    volume = INTENSITY.to_network(torch.from_numpy(source.astype(np.float32))).to(device)
    total, finished = images_to_process(network, tuple(volume.shape), ratio), 0

    def done(count: int) -> None:
        nonlocal finished
        finished += count
        progress(finished, total, "cross-view network")
        if cancel is not None:
            cancel.raise_if_set()

    with torch.inference_mode(), autocast(device, precision):
        if uses_levels(network, ratio):
            levels = levels_for(ratio)
            fine, disagreement = _refine_levels(network, volume, levels, batch_size, done)
            fine_spacing, observed = image.GetSpacing()[2] / 2**levels, observed_slices(len(source), 2**levels)
        else:
            levels = 0
            fine, disagreement = fractional_slices(network, volume, ratio, batch_size, done)
            fine_spacing, observed = slice_spacing, observed_slices(len(source), ratio)
    values = (fine.numpy() * INTENSITY.scale).astype(np.float32)
    copies = np.flatnonzero(observed >= 0)
    values[copies] = source[observed[copies]]  # observed slices exactly, also beyond the networks' HU range
    disagreement_hu = disagreement.numpy() * INTENSITY.scale
    fine_image = _image_like(values, image, fine_spacing)
    disagreement_image = _image_like(disagreement_hu.astype(np.float32), image, fine_spacing)
    if abs(fine_spacing - slice_spacing) > 1e-6 * slice_spacing:  # older models, factors other than 2^n: linear
        fine_image, disagreement_image = (sitk.Resample(item, finer_grid(item, slice_spacing), sitk.Transform(),
                                                        sitk.sitkLinear, 0.0, sitk.sitkFloat32)
                                          for item in (fine_image, disagreement_image))
        values, disagreement_hu = sitk.GetArrayFromImage(fine_image), sitk.GetArrayFromImage(disagreement_image)
        if abs(ratio - round(ratio)) < 1e-6:  # observed slices exact again, with no disagreement
            values[:: round(ratio)], disagreement_hu[:: round(ratio)] = source, 0
            disagreement_image = _image_like(disagreement_hu, image, slice_spacing)
    output = sitk.GetImageFromArray(cast_like(values, source.dtype))
    output.CopyInformation(fine_image)
    return CrossViewResult(output, disagreement_image, levels)


def _refine_levels(network: CrossViewNet, volume: torch.Tensor, levels: int, batch_size: int | None,
                   done: BatchDone) -> tuple[torch.Tensor, torch.Tensor]:
    """``levels`` x2 levels (incremental): the finest volume (CPU) and the largest disagreement of any level."""
    disagreement = torch.zeros_like(volume, device="cpu")
    for _ in range(levels):
        finer, level_disagreement = refine_level(network, volume, batch_size, done)
        carried = interleave(disagreement, torch.zeros_like(level_disagreement[1::2]))
        disagreement = torch.maximum(carried, level_disagreement)
        volume = finer.to(volume.device)
    return volume.cpu(), disagreement
