"""What the panel, the CLI and the engine agree on without importing torch: the samplers' names,
titles, default steps and descriptions, and the default settings of a synthesis.

Imports only the standard library, so the Slicer panel can open before PyTorch is installed.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SamplerInfo:
    name: str
    title: str
    default_steps: int
    description: str


SAMPLER_INFO: dict[str, SamplerInfo] = {
    "ddpm": SamplerInfo("ddpm", "DDPM", 10, "ancestral sampling; 1000 steps = paper 1's DDPM, fewer = respacing "
                        "(10 is within 0.5 dB PSNR of 1000 here: benchmarks/mritoct_quality_nfe.py)"),
    "em": SamplerInfo("em", "Euler–Maruyama", 1000, "reverse SDE, Euler–Maruyama (paper 1)"),
    "pc": SamplerInfo("pc", "Predictor–Corrector", 1000,
                      "reverse diffusion + Langevin corrector, snr 0.16 (paper 1); NFE = steps x (1 + corrector steps)"),
    "ode": SamplerInfo("ode", "Probability-flow ODE", 100,
                       "adaptive RK45 at tolerance 1e-5 (paper 1), or fixed-step Heun/RK4"),
    "ddim": SamplerInfo("ddim", "DDIM", 50, "deterministic at eta = 0"),
    "dpmpp": SamplerInfo("dpmpp", "DPM-Solver++", 20, "DPM-Solver++(2M) multistep, 10–25 steps"),
}

DEFAULT_SAMPLER = "ddpm"  # at its default 10 steps: the fewest NFE within 0.5 dB PSNR of DDPM-1000 (README)
DEFAULT_MODEL = "mritoct-ddpm"
DEFAULT_MC_SAMPLES = 4
DEFAULT_SEED = 0
