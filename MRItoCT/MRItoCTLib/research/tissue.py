"""Tissue properties and the spin-echo T2-weighted signal model shared by the data generators.

Values are typical 1.5 T literature figures (proton density relative to water,
T1 and T2 in ms) and CT numbers in HU. Fat's T2 is its apparent T2 in turbo spin
echo, where J-coupling keeps fat bright.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Tissue:
    name: str
    proton_density: float
    t1_ms: float
    t2_ms: float
    hu: float
    hu_spread: float  # texture amplitude in HU


TISSUES: dict[str, Tissue] = {t.name: t for t in [
    Tissue("air", 0.0, 1.0, 1.0, -1000.0, 5.0),
    Tissue("fat", 0.95, 260.0, 135.0, -100.0, 15.0),
    Tissue("skin", 0.8, 800.0, 45.0, 20.0, 10.0),
    Tissue("muscle", 0.8, 900.0, 35.0, 50.0, 12.0),
    Tissue("urine", 1.0, 3000.0, 1200.0, 8.0, 4.0),
    Tissue("prostate", 0.85, 1300.0, 95.0, 40.0, 8.0),
    Tissue("rectal_wall", 0.8, 1000.0, 50.0, 40.0, 10.0),
    Tissue("gas", 0.0, 1.0, 1.0, -950.0, 30.0),
    Tissue("marrow", 0.85, 350.0, 110.0, 230.0, 60.0),
    Tissue("cortical_bone", 0.05, 500.0, 1.0, 1400.0, 200.0),
    Tissue("peripheral_zone", 0.9, 1700.0, 150.0, 35.0, 6.0),  # prostate's peripheral zone, brighter than the rest
]}
TISSUE_INDEX = {name: index for index, name in enumerate(TISSUES)}


def spin_echo_signal(tissue: Tissue, repetition_ms: float, echo_ms: float) -> float:
    """S = PD (1 - exp(-TR/T1)) exp(-TE/T2)."""
    return tissue.proton_density * (1.0 - np.exp(-repetition_ms / tissue.t1_ms)) * np.exp(-echo_ms / tissue.t2_ms)


def signal_table(repetition_ms: float = 4500.0, echo_ms: float = 100.0) -> np.ndarray:
    """T2-weighted signal of every tissue, in ``TISSUE_INDEX`` order."""
    return np.array([spin_echo_signal(t, repetition_ms, echo_ms) for t in TISSUES.values()], np.float32)


def hu_table() -> np.ndarray:
    return np.array([t.hu for t in TISSUES.values()], np.float32)


def smooth_field(shape: tuple[int, ...], rng: np.random.Generator, scale_voxels: float) -> np.ndarray:
    """Zero-mean, unit-std smooth random field (low-pass filtered noise in Fourier space)."""
    noise = rng.standard_normal(shape)
    frequencies = np.meshgrid(*[np.fft.fftfreq(n) for n in shape], indexing="ij")
    radius_sq = sum(f**2 for f in frequencies)
    filtered = np.real(np.fft.ifftn(np.fft.fftn(noise) * np.exp(-radius_sq * (np.pi * scale_voxels) ** 2 / 2)))
    return ((filtered - filtered.mean()) / (filtered.std() + 1e-12)).astype(np.float32)


def block_average(volume: np.ndarray, factor: int) -> np.ndarray:
    """Average ``factor`` x ``factor`` in-plane blocks of a (z, y, x) volume (partial-volume effect)."""
    z, y, x = volume.shape
    return volume.reshape(z, y // factor, factor, x // factor, factor).mean(axis=(2, 4))


def _blur_in_plane(volume: np.ndarray, spacing: tuple[float, float, float], sigma_mm: float,
                   sigma_y_mm: float | None = None) -> np.ndarray:
    """Gaussian blur in each axial plane (x by ``sigma_mm``, y by ``sigma_y_mm``, default the same)."""
    import SimpleITK as sitk

    sigma_y_mm = sigma_mm if sigma_y_mm is None else sigma_y_mm
    image = sitk.GetImageFromArray(volume.astype(np.float32))
    image.SetSpacing(spacing)
    return sitk.GetArrayFromImage(sitk.DiscreteGaussian(image, [sigma_mm**2, sigma_y_mm**2, 0.0], 32, 0.01, True))


def striation_field(shape: tuple[int, ...], rng: np.random.Generator, spacing_mm: float) -> np.ndarray:
    """Zero-mean, unit-std texture elongated along a random in-plane direction (muscle fibres, fat septa)."""
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(rng.standard_normal(shape).astype(np.float32))
    image.SetSpacing((spacing_mm, spacing_mm, 3.0))
    along, across = rng.uniform(6.0, 12.0), rng.uniform(0.6, 1.2)  # mm
    vertical = rng.random() < 0.5
    variance = [across**2, along**2, 0.0] if vertical else [along**2, across**2, 0.0]
    field = sitk.GetArrayFromImage(sitk.DiscreteGaussian(image, variance, 64, 0.01, True))
    return ((field - field.mean()) / (field.std() + 1e-12)).astype(np.float32)


# Per-case ranges of the simulated acquisition, recorded with the rendering recipe (``dataset.json``, model card).
ACQUISITION: dict[str, Any] = {
    "bias_field_log_amplitude": 0.25,  # coil bias: exp(this x a smooth unit field)
    "bias_field_smoothness_mm": 60.0,
    "coil_depth_gain": (0.0, 0.5),  # surface coils: extra gain at the front and back of the field
    "coil_tilt": (-0.2, 0.2),  # front-back asymmetry of the surface coils
    "phase_blur_pixels": (0.5, 1.0),  # TSE echo-train blur along the phase-encode direction (Gaussian sigma)
    "noise_share": (0.015, 0.035),  # Rician noise sigma, as a share of the 99th percentile signal
}


def surface_coil_profile(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Receive-coil sensitivity of anterior and posterior surface coils: brighter near the front and back."""
    rows = np.linspace(-1.0, 1.0, shape[-2], dtype=np.float32)
    depth_gain, tilt = rng.uniform(*ACQUISITION["coil_depth_gain"]), rng.uniform(*ACQUISITION["coil_tilt"])
    profile = 1.0 + depth_gain * rows**2 + tilt * rows
    return np.broadcast_to(profile[:, None], shape[-2:]).astype(np.float32)


def add_mri_acquisition(clean: np.ndarray, spacing: tuple[float, float, float],
                        rng: np.random.Generator) -> np.ndarray:
    """Coil bias and surface-coil profile, point-spread blur (extra along the phase-encode direction, as in
    turbo spin echo) and Rician noise on a clean T2-weighted signal; scaled to ~0-700."""
    smooth = smooth_field(clean.shape, rng, ACQUISITION["bias_field_smoothness_mm"] / spacing[0])
    bias = np.exp(ACQUISITION["bias_field_log_amplitude"] * smooth) * surface_coil_profile(clean.shape, rng)
    phase_blur = rng.uniform(*ACQUISITION["phase_blur_pixels"]) * spacing[0]  # T2 decay across the echo train
    sigmas = (0.5 * spacing[0], phase_blur) if rng.random() < 0.5 else (phase_blur, 0.5 * spacing[0])
    mri = _blur_in_plane(clean * bias, spacing, *sigmas)
    noise_level = rng.uniform(*ACQUISITION["noise_share"]) * float(np.percentile(mri, 99))
    mri = np.hypot(mri + rng.normal(0, noise_level, mri.shape), rng.normal(0, noise_level, mri.shape))
    return (mri * 700.0 / max(float(np.percentile(mri, 99.5)), 1e-6)).astype(np.float32)


def render_labels(labels: np.ndarray, spacing: tuple[float, float, float], rng: np.random.Generator,
                  supersampling: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """T2-weighted MRI and CT (HU) from a supersampled (z, y, x) tissue label map.

    Both get the same texture (tissue heterogeneity) and the partial-volume effect of
    block averaging; the MRI then gets the acquisition (bias, blur, Rician noise), the CT
    scanner blur and Gaussian noise. ``spacing`` is the output (x, y, z) spacing.
    """
    signals = signal_table(rng.uniform(3500, 6000), rng.uniform(85, 120))
    spreads = np.array([t.hu_spread for t in TISSUES.values()], np.float32)
    mri_fine = signals[labels]
    ct_fine = hu_table()[labels]
    mri = block_average(mri_fine, supersampling)
    ct = block_average(ct_fine, supersampling)
    coarse_labels = labels[:, ::supersampling, ::supersampling]
    texture = smooth_field(mri.shape, rng, 2.0)
    ct = ct + spreads[coarse_labels] * texture
    fibrous = np.isin(coarse_labels, [TISSUE_INDEX["muscle"], TISSUE_INDEX["fat"]])
    mri = mri * (1.0 + 0.08 * texture + 0.12 * fibrous * striation_field(mri.shape, rng, spacing[0]))
    ct = _blur_in_plane(ct, spacing, 0.6) + rng.normal(0, rng.uniform(8, 18), ct.shape)
    return add_mri_acquisition(mri, spacing, rng), np.clip(ct, -1024, 3071).astype(np.float32)
