"""Image-similarity metrics of the SynthRAD challenge and uncertainty-calibration measures.

SynthRAD protocol: CT clipped to [-1024, 3000] HU; MAE and mean error inside the
body mask; PSNR with data range 4024 over the mask; SSIM map (Gaussian window,
sigma 1.5) over the image, averaged inside the mask.
"""

from __future__ import annotations

import numpy as np

from CTSynthesisCore.metrics import psnr
from CTSynthesisCore.metrics import ssim_map as core_ssim_map

HU_MIN, HU_MAX = -1024.0, 3000.0  # the SynthRAD challenge's clipping range (its protocol, not a model's mapping)
DATA_RANGE = HU_MAX - HU_MIN
BONE_HU = 250.0
SOFT_TISSUE_HU = (-150.0, 250.0)


def _clip(hu: np.ndarray) -> np.ndarray:
    return np.clip(hu.astype(np.float64), HU_MIN, HU_MAX)


def ssim_map(prediction: np.ndarray, reference: np.ndarray, sigma: float = 1.5) -> np.ndarray:
    """Per-voxel SSIM of (z, y, x) HU volumes clipped to the SynthRAD range."""
    return core_ssim_map(_clip(prediction) - HU_MIN, _clip(reference) - HU_MIN, DATA_RANGE, sigma)


def image_metrics(prediction: np.ndarray, reference: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """MAE, mean error, PSNR, SSIM inside ``mask``, plus MAE in bone and in soft tissue (by the reference HU)."""
    mask = mask.astype(bool)
    predicted, true = _clip(prediction), _clip(reference)
    error = predicted - true
    bone = mask & (true > BONE_HU)
    soft = mask & (true > SOFT_TISSUE_HU[0]) & (true <= SOFT_TISSUE_HU[1])
    return {
        "mae": float(np.abs(error[mask]).mean()),
        "me": float(error[mask].mean()),
        "psnr": psnr(predicted[mask], true[mask], DATA_RANGE),
        "ssim": float(ssim_map(prediction, reference)[mask].mean()),
        "mae_bone": float(np.abs(error[bone]).mean()) if bone.any() else float("nan"),
        "mae_soft": float(np.abs(error[soft]).mean()) if soft.any() else float("nan"),
    }


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation (average ranks are not needed for continuous data)."""
    rank_a = np.argsort(np.argsort(a)).astype(np.float64)
    rank_b = np.argsort(np.argsort(b)).astype(np.float64)
    return float(np.corrcoef(rank_a, rank_b)[0, 1])


def sparsification(uncertainty: np.ndarray, error: np.ndarray, steps: int = 20) -> dict[str, np.ndarray | float]:
    """MAE after removing the most uncertain fraction (and, as oracle, the largest errors); AUSE is the area between."""
    fractions = np.linspace(0.0, 0.95, steps)
    by_uncertainty = error[np.argsort(-uncertainty)]
    by_error = np.sort(error)[::-1]
    count = len(error)
    curve = np.array([by_uncertainty[int(f * count):].mean() for f in fractions])
    oracle = np.array([by_error[int(f * count):].mean() for f in fractions])
    scale = curve[0] if curve[0] > 0 else 1.0
    return {"fractions": fractions, "curve": curve / scale, "oracle": oracle / scale,
            "ause": float(np.trapezoid(curve / scale - oracle / scale, fractions))}


def uncertainty_metrics(uncertainty: np.ndarray, prediction: np.ndarray, reference: np.ndarray, mask: np.ndarray,
                        max_voxels: int = 200_000, seed: int = 0) -> dict[str, float]:
    """Spearman(uncertainty, |error|) inside the body and the area under the sparsification error (AUSE)."""
    mask = mask.astype(bool)
    error = np.abs(_clip(prediction) - _clip(reference))[mask]
    inside = uncertainty[mask].astype(np.float64)
    if len(error) > max_voxels:
        pick = np.random.default_rng(seed).choice(len(error), max_voxels, replace=False)
        error, inside = error[pick], inside[pick]
    if np.all(inside == inside[0]):
        return {"spearman": float("nan"), "ause": float("nan")}
    return {"spearman": spearman(inside, error), "ause": sparsification(inside, error)["ause"]}


def slice_step(hu: np.ndarray, mask: np.ndarray) -> float:
    """Mean absolute HU difference between adjacent slices (axis 0) where both voxels are inside ``mask``: stripes
    between slices raise it above a real CT's figure at the same slice spacing."""
    both = mask[1:].astype(bool) & mask[:-1].astype(bool)
    return float(np.abs(np.diff(hu.astype(np.float64), axis=0))[both].mean())
