"""Samplers for conditional diffusion, one function per method, one signature, one registry.

Every sampler takes ``(denoiser, condition, process, steps, generator, callback, cancel)``
and returns a :class:`SampleResult` with the sample and the number of network
evaluations per sample (NFE). ``denoiser(x, t, condition)`` predicts the noise
``eps`` in ``x_t = a(t) x_0 + s(t) eps``; the score is ``-eps / s(t)``.

Time runs over a grid of ``steps`` points from t = 1 to ``process.t_min``: the
network is evaluated at each point and the last evaluation gives the final
denoised estimate (Tweedie), so DDPM with 1000 steps is the classic DDPM and
fewer steps are its respacing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Protocol

import torch
from torch import Tensor

from CTSynthesisCore.progress import CancelToken

from .catalog import sampler_info
from .processes import NoiseProcess, log_snr


class Denoiser(Protocol):
    def __call__(self, x: Tensor, t: Tensor, condition: Tensor | None) -> Tensor: ...


StepCallback = Callable[[int, int, Tensor], None]


class SliceSharedNoise:
    """Noise shared by the slices of each Monte-Carlo sample: a batch laid out as ``samples x slices`` gets one
    draw per sample, repeated over its ``slices``. Neighbouring slices then share their random texture, so the
    volume has no stripes between slices; the spread over samples is unchanged. Pass it as ``generator``."""

    def __init__(self, generator: torch.Generator | None, slices: int) -> None:
        self.generator, self.slices = generator, slices

    def randn(self, shape: tuple[int, ...], device: torch.device, dtype: torch.dtype = torch.float32) -> Tensor:
        samples = shape[0] // self.slices
        draw = torch.randn((samples, *shape[1:]), generator=self.generator, device=device, dtype=dtype)
        return draw.repeat_interleave(self.slices, dim=0)


NoiseGenerator = torch.Generator | SliceSharedNoise | None


def randn(generator: NoiseGenerator, shape: tuple[int, ...], device: torch.device,
          dtype: torch.dtype = torch.float32) -> Tensor:
    """Standard normal noise from a torch generator, or from a :class:`SliceSharedNoise`."""
    if isinstance(generator, SliceSharedNoise):
        return generator.randn(tuple(shape), device, dtype)
    return torch.randn(shape, generator=generator, device=device, dtype=dtype)


@dataclass
class SampleResult:
    sample: Tensor
    nfe: int


class _Run:
    """Bookkeeping shared by the samplers: NFE count, time tensors, progress, cancel, noise."""

    def __init__(self, denoiser: Denoiser, condition: Tensor | None, process: NoiseProcess, total: int,
                 generator: NoiseGenerator, callback: StepCallback | None, cancel: CancelToken | None,
                 reference: Tensor) -> None:
        self.denoiser, self.condition, self.process = denoiser, condition, process
        self.total, self.generator, self.callback, self.cancel = total, generator, callback, cancel
        self.reference, self.nfe, self.step = reference, 0, 0

    def eps(self, x: Tensor, t: float) -> Tensor:
        self.nfe += 1
        t_batch = torch.full((x.shape[0],), t, device=x.device, dtype=x.dtype)
        return self.denoiser(x, t_batch, self.condition)

    def noise(self) -> Tensor:
        return randn(self.generator, tuple(self.reference.shape), self.reference.device, self.reference.dtype)

    def report(self, x0: Tensor) -> None:
        self.step += 1
        if self.cancel is not None:
            self.cancel.raise_if_set()
        if self.callback is not None:
            self.callback(min(self.step, self.total), self.total, x0)


def _coefficients(process: NoiseProcess, times: list[float]) -> tuple[list[float], list[float]]:
    alpha, sigma = process.alpha_sigma(torch.tensor(times, dtype=torch.float64))
    return alpha.tolist(), sigma.tolist()


def time_grid(process: NoiseProcess, steps: int, spacing: str = "time") -> list[float]:
    """``steps`` times from 1 to ``t_min``, uniform in t or in log-SNR."""
    if steps < 1:
        raise ValueError("steps must be at least 1")
    if steps == 1:
        return [1.0]
    if spacing == "time":
        return torch.linspace(1.0, process.t_min, steps, dtype=torch.float64).tolist()
    ends = log_snr(process, torch.tensor([1.0, process.t_min], dtype=torch.float64))
    return process.t_from_log_snr(torch.linspace(float(ends[0]), float(ends[1]), steps, dtype=torch.float64)).tolist()


def _initial(process: NoiseProcess, shape: tuple[int, ...], generator: NoiseGenerator,
             device: torch.device, x_init: Tensor | None) -> Tensor:
    if x_init is not None:
        return x_init.clone()
    return randn(generator, shape, device) * process.prior_std()


def _start(denoiser, condition, process, total, generator, callback, cancel, shape, x_init, device):
    if shape is None and x_init is not None:
        shape = tuple(x_init.shape)
    if shape is None:
        if condition is None:
            raise ValueError("give a shape or a condition")
        shape = (condition.shape[0], 1, *condition.shape[2:])
    device = device or next((v.device for v in (x_init, condition) if v is not None), torch.device("cpu"))
    x = _initial(process, tuple(shape), generator, device, x_init)
    return x, _Run(denoiser, condition, process, total, generator, callback, cancel, x)


def _run_grid(run: _Run, x: Tensor, times: list[float], alphas: list[float], sigmas: list[float],
              update: Callable[[int, Tensor, Tensor, Tensor], Tensor]) -> Tensor:
    """Evaluate the network at each grid time; ``update(i, x, eps, x0)`` moves x to the next time.

    At the last time the result is the denoised estimate x0.
    """
    for i in range(len(times)):
        eps = run.eps(x, times[i])
        x0 = (x - sigmas[i] * eps) / alphas[i]
        x = x0 if i == len(times) - 1 else update(i, x, eps, x0)
        run.report(x0)
    return x


def sample_ddpm(denoiser: Denoiser, condition: Tensor | None, process: NoiseProcess, steps: int = 1000,
                generator: NoiseGenerator = None, callback: StepCallback | None = None,
                cancel: CancelToken | None = None, shape: tuple[int, ...] | None = None,
                x_init: Tensor | None = None, device: torch.device | None = None) -> SampleResult:
    """Ancestral sampling from the DDPM posterior q(x_s | x_t, x0_hat); fewer steps = respacing."""
    x, run = _start(denoiser, condition, process, steps, generator, callback, cancel, shape, x_init, device)
    times = time_grid(process, steps)
    alphas, sigmas = _coefficients(process, times)

    def update(i: int, x: Tensor, eps: Tensor, x0: Tensor) -> Tensor:
        ratio = alphas[i] / alphas[i + 1]
        beta_sq = sigmas[i] ** 2 - ratio**2 * sigmas[i + 1] ** 2
        mean = (alphas[i + 1] * beta_sq / sigmas[i] ** 2) * x0 + (ratio * sigmas[i + 1] ** 2 / sigmas[i] ** 2) * x
        return mean + math.sqrt(max(beta_sq, 0.0)) * sigmas[i + 1] / sigmas[i] * run.noise()

    return SampleResult(_run_grid(run, x, times, alphas, sigmas, update), run.nfe)


def sample_ddim(denoiser: Denoiser, condition: Tensor | None, process: NoiseProcess, steps: int = 50,
                generator: NoiseGenerator = None, callback: StepCallback | None = None,
                cancel: CancelToken | None = None, shape: tuple[int, ...] | None = None,
                x_init: Tensor | None = None, device: torch.device | None = None, eta: float = 0.0) -> SampleResult:
    """DDIM: x_s = a_s x0 + sqrt(s_s^2 - sigma^2) eps + sigma z, sigma = eta * (DDPM posterior std)."""
    x, run = _start(denoiser, condition, process, steps, generator, callback, cancel, shape, x_init, device)
    times = time_grid(process, steps)
    alphas, sigmas = _coefficients(process, times)

    def update(i: int, x: Tensor, eps: Tensor, x0: Tensor) -> Tensor:
        ratio = alphas[i] / alphas[i + 1]
        posterior_var = (sigmas[i] ** 2 - ratio**2 * sigmas[i + 1] ** 2) * sigmas[i + 1] ** 2 / sigmas[i] ** 2
        noise_std = eta * math.sqrt(max(posterior_var, 0.0))
        x = alphas[i + 1] * x0 + math.sqrt(max(sigmas[i + 1] ** 2 - noise_std**2, 0.0)) * eps
        return x + noise_std * run.noise() if noise_std > 0 else x

    return SampleResult(_run_grid(run, x, times, alphas, sigmas, update), run.nfe)


def sample_euler_maruyama(denoiser: Denoiser, condition: Tensor | None, process: NoiseProcess, steps: int = 1000,
                          generator: NoiseGenerator = None, callback: StepCallback | None = None,
                          cancel: CancelToken | None = None, shape: tuple[int, ...] | None = None,
                          x_init: Tensor | None = None, device: torch.device | None = None) -> SampleResult:
    """Euler–Maruyama on the reverse SDE dx = [f - g^2 score] dt + g dw (time running backwards)."""
    x, run = _start(denoiser, condition, process, steps, generator, callback, cancel, shape, x_init, device)
    times = time_grid(process, steps)
    alphas, sigmas = _coefficients(process, times)
    drift = process.drift_coefficient(torch.tensor(times, dtype=torch.float64)).tolist()
    g_sq = process.diffusion_squared(torch.tensor(times, dtype=torch.float64)).tolist()

    def update(i: int, x: Tensor, eps: Tensor, x0: Tensor) -> Tensor:
        h = times[i] - times[i + 1]
        score = -eps / sigmas[i]
        return x - (drift[i] * x - g_sq[i] * score) * h + math.sqrt(g_sq[i] * h) * run.noise()

    return SampleResult(_run_grid(run, x, times, alphas, sigmas, update), run.nfe)


def sample_predictor_corrector(denoiser: Denoiser, condition: Tensor | None, process: NoiseProcess,
                               steps: int = 1000, generator: NoiseGenerator = None,
                               callback: StepCallback | None = None, cancel: CancelToken | None = None,
                               shape: tuple[int, ...] | None = None, x_init: Tensor | None = None,
                               device: torch.device | None = None, snr: float = 0.16,
                               corrector_steps: int = 1) -> SampleResult:
    """Langevin corrector (signal-to-noise ``snr``) then reverse-diffusion predictor, at each time.

    The Langevin step size uses per-sample gradient norms, so a sample does not
    depend on which other samples share its batch.
    """
    x, run = _start(denoiser, condition, process, steps, generator, callback, cancel, shape, x_init, device)
    times = time_grid(process, steps)
    alphas, sigmas = _coefficients(process, times)
    batch_dims = tuple(range(1, x.dim()))
    for i in range(steps):
        ratio = alphas[i] / alphas[i + 1] if i < steps - 1 else 1.0
        for _ in range(corrector_steps):
            score = -run.eps(x, times[i]) / sigmas[i]
            noise = run.noise()
            grad_norm = torch.linalg.vector_norm(score, dim=batch_dims, keepdim=True)
            noise_norm = torch.linalg.vector_norm(noise, dim=batch_dims, keepdim=True)
            step_size = 2.0 * ratio**2 * (snr * noise_norm / grad_norm.clamp_min(1e-12)) ** 2
            x = x + step_size * score + torch.sqrt(2.0 * step_size) * noise
        eps = run.eps(x, times[i])
        x0 = (x - sigmas[i] * eps) / alphas[i]
        if i == steps - 1:
            x = x0
        else:
            beta_sq = sigmas[i] ** 2 - ratio**2 * sigmas[i + 1] ** 2
            x = (x - beta_sq * eps / sigmas[i]) / ratio + math.sqrt(max(beta_sq, 0.0)) / ratio * run.noise()
        run.report(x0)
    return SampleResult(x, run.nfe)


def _flow(run: _Run, process: NoiseProcess, x: Tensor, t: float) -> Tensor:
    """Probability-flow ODE velocity dx/dt = f(x, t) - g(t)^2 score / 2."""
    time = torch.tensor(t, dtype=torch.float64)
    _, sigma = process.alpha_sigma(time)
    score = -run.eps(x, t) / float(sigma)
    return float(process.drift_coefficient(time)) * x - 0.5 * float(process.diffusion_squared(time)) * score


_DOPRI5 = (
    (1 / 5,),
    (3 / 40, 9 / 40),
    (44 / 45, -56 / 15, 32 / 9),
    (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
    (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
    (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84),
)
_DOPRI5_NODES = (0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0)
_DOPRI5_ERROR = (71 / 57600, 0.0, -71 / 16695, 71 / 1920, -17253 / 339200, 22 / 525, -1 / 40)


def _integrate_rk45(run: _Run, process: NoiseProcess, x: Tensor, t_start: float, t_end: float,
                    rtol: float, atol: float, max_steps: int = 10000) -> Tensor:
    """Adaptive Dormand–Prince 5(4) with first-same-as-last; every evaluation counts in NFE."""
    t, h = t_start, (t_end - t_start) * 0.01
    k_first = _flow(run, process, x, t)
    for _ in range(max_steps):
        if (t - t_end) * (t_start - t_end) <= 0:
            break
        if abs(h) > abs(t_end - t):
            h = t_end - t
        stages = [k_first]
        for row, node in zip(_DOPRI5, _DOPRI5_NODES[1:]):
            increment = sum(coef * k for coef, k in zip(row, stages) if coef != 0.0)
            stages.append(_flow(run, process, x + h * increment, t + node * h))
        x_new = x + h * sum(coef * k for coef, k in zip(_DOPRI5[-1], stages) if coef != 0.0)
        error = h * sum(coef * k for coef, k in zip(_DOPRI5_ERROR, stages) if coef != 0.0)
        scale = atol + rtol * torch.maximum(x.abs(), x_new.abs())
        error_norm = float(torch.sqrt(torch.mean((error / scale) ** 2)))
        if error_norm <= 1.0:
            t, x, k_first = t + h, x_new, stages[-1]
        h *= min(5.0, max(0.2, 0.9 * (max(error_norm, 1e-10)) ** -0.2))
    return x


def sample_ode(denoiser: Denoiser, condition: Tensor | None, process: NoiseProcess, steps: int = 100,
               generator: NoiseGenerator = None, callback: StepCallback | None = None,
               cancel: CancelToken | None = None, shape: tuple[int, ...] | None = None,
               x_init: Tensor | None = None, device: torch.device | None = None, method: str = "rk45",
               tolerance: float = 1e-5) -> SampleResult:
    """Probability-flow ODE: fixed-step ``heun`` / ``rk4`` on ``steps`` points, or adaptive ``rk45`` at relative and
    absolute ``tolerance`` (it picks its own steps)."""
    x, run = _start(denoiser, condition, process, steps, generator, callback, cancel, shape, x_init, device)
    if method == "rk45":
        run.total = 2
        x = _integrate_rk45(run, process, x, 1.0, process.t_min, tolerance, tolerance)
        run.report(x)
    elif method in ("heun", "rk4"):
        times = time_grid(process, steps)
        for i in range(steps - 1):
            t, h = times[i], times[i + 1] - times[i]
            k1 = _flow(run, process, x, t)
            if method == "heun":
                k2 = _flow(run, process, x + h * k1, t + h)
                x = x + h * (k1 + k2) / 2
            else:
                k2 = _flow(run, process, x + h / 2 * k1, t + h / 2)
                k3 = _flow(run, process, x + h / 2 * k2, t + h / 2)
                k4 = _flow(run, process, x + h * k3, t + h)
                x = x + h * (k1 + 2 * k2 + 2 * k3 + k4) / 6
            run.report(x)
    else:
        raise ValueError(f"unknown ODE method '{method}' (heun, rk4, rk45)")
    alpha, sigma = _coefficients(process, [process.t_min])
    x0 = (x - sigma[0] * run.eps(x, process.t_min)) / alpha[0]
    run.report(x0)
    return SampleResult(x0, run.nfe)


def sample_dpmpp(denoiser: Denoiser, condition: Tensor | None, process: NoiseProcess, steps: int = 20,
                 generator: NoiseGenerator = None, callback: StepCallback | None = None,
                 cancel: CancelToken | None = None, shape: tuple[int, ...] | None = None,
                 x_init: Tensor | None = None, device: torch.device | None = None) -> SampleResult:
    """DPM-Solver++(2M): second-order multistep solver of the data-prediction ODE, log-SNR grid."""
    x, run = _start(denoiser, condition, process, steps, generator, callback, cancel, shape, x_init, device)
    times = time_grid(process, steps, spacing="log_snr")
    alphas, sigmas = _coefficients(process, times)
    lambdas = [math.log(a / s) for a, s in zip(alphas, sigmas)]
    history: list[tuple[Tensor, float]] = []  # the previous step's (x0, h)

    def update(i: int, x: Tensor, eps: Tensor, x0: Tensor) -> Tensor:
        h = lambdas[i + 1] - lambdas[i]
        direction = x0
        if history:
            previous_x0, previous_h = history[-1]
            r = previous_h / h
            direction = (1 + 1 / (2 * r)) * x0 - (1 / (2 * r)) * previous_x0
        history[:] = [(x0, h)]
        return (sigmas[i + 1] / sigmas[i]) * x - alphas[i + 1] * math.expm1(-h) * direction

    return SampleResult(_run_grid(run, x, times, alphas, sigmas, update), run.nfe)


def get_sampler(name: str) -> Callable[..., SampleResult]:
    """The sampler function registered under ``name`` (:data:`~MRItoCTLib.catalog.SAMPLERS`)."""
    return sampler_info(name).resolve()
