"""Image-similarity measures shared by both engines."""

from __future__ import annotations

import numpy as np
import torch


def ssim_map(prediction: np.ndarray, reference: np.ndarray, data_range: float, sigma: float = 1.5) -> np.ndarray:
    """Per-voxel SSIM of two (z, y, x) volumes (already clipped), slice by slice with a Gaussian window."""
    radius = int(3.5 * sigma + 0.5)
    coords = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel_1d = torch.exp(-(coords**2) / (2 * sigma**2))
    kernel = ((kernel_1d[:, None] * kernel_1d[None, :]) / kernel_1d.sum() ** 2)[None, None]

    def blur(x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.conv2d(torch.nn.functional.pad(x, [radius] * 4, mode="replicate"), kernel)

    x = torch.from_numpy(np.asarray(prediction, dtype=np.float64))[:, None]
    y = torch.from_numpy(np.asarray(reference, dtype=np.float64))[:, None]
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_x, mu_y = blur(x), blur(y)
    var_x, var_y, cov = blur(x * x) - mu_x**2, blur(y * y) - mu_y**2, blur(x * y) - mu_x * mu_y
    value = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return value[:, 0].numpy()


def psnr(prediction: np.ndarray, reference: np.ndarray, data_range: float) -> float:
    """Peak signal-to-noise ratio in dB of two arrays (already clipped) over ``data_range``."""
    error = np.asarray(prediction, dtype=np.float64) - np.asarray(reference, dtype=np.float64)
    return float(10 * np.log10(data_range**2 / max(float(np.mean(error**2)), 1e-12)))
