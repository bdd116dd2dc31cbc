"""Image-similarity measures shared by both engines."""

from __future__ import annotations

import numpy as np
import torch


def ssim_map(prediction: np.ndarray, reference: np.ndarray, data_range: float, sigma: float = 1.5,
             max_voxels: int = 2**22) -> np.ndarray:
    """Per-voxel SSIM of two (z, y, x) volumes (already clipped), slice by slice with a Gaussian window.

    Slices are processed in groups of at most ``max_voxels`` voxels with a separable window, so that a
    whole 512 x 512 CT needs tens of megabytes rather than the tens of gigabytes of one 2D convolution."""
    prediction, reference = np.asarray(prediction, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    group = max(1, max_voxels // max(1, prediction[0].size))
    return np.concatenate([_ssim_slices(prediction[start:start + group], reference[start:start + group],
                                        data_range, sigma) for start in range(0, len(prediction), group)])


def _ssim_slices(prediction: np.ndarray, reference: np.ndarray, data_range: float, sigma: float) -> np.ndarray:
    """:func:`ssim_map` of a group of slices."""
    radius = int(3.5 * sigma + 0.5)
    coords = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-(coords**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()

    def blur(x: torch.Tensor) -> torch.Tensor:
        padded = torch.nn.functional.pad(x, [radius] * 4, mode="replicate")
        rows = torch.nn.functional.conv2d(padded, kernel.view(1, 1, -1, 1))
        return torch.nn.functional.conv2d(rows, kernel.view(1, 1, 1, -1))

    x, y = torch.from_numpy(prediction)[:, None], torch.from_numpy(reference)[:, None]
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_x, mu_y = blur(x), blur(y)
    var_x, var_y, cov = blur(x * x) - mu_x**2, blur(y * y) - mu_y**2, blur(x * y) - mu_x * mu_y
    value = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return value[:, 0].numpy()


def psnr(prediction: np.ndarray, reference: np.ndarray, data_range: float) -> float:
    """Peak signal-to-noise ratio in dB of two arrays (already clipped) over ``data_range``."""
    error = np.asarray(prediction, dtype=np.float64) - np.asarray(reference, dtype=np.float64)
    return float(10 * np.log10(data_range**2 / max(float(np.mean(error**2)), 1e-12)))
