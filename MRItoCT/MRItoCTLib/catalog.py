"""The sampler registry and the default settings of a synthesis, without importing torch.

One :class:`SamplerInfo` per sampler holds everything the rest of the extension derives from it: the
function (imported on first use), the titles, the default number of steps, the typed options with
their command-line flags, and the description. The CLI flags and help, the settings check, the
Slicer combo box, the evaluation tables and the help texts all read this registry; adding a sampler
is one entry here plus its function.

Imports only the standard library, so the Slicer panel can open before PyTorch is installed.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable

from CTSynthesisCore.errors import UserInputError


@dataclass(frozen=True)
class SamplerOption:
    """A keyword of a sampler function, typed, with its command-line flag."""

    name: str
    type: type  # int, float or str
    default: Any
    flag: str
    help: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    minimum_excluded: bool = False  # the value must be above ``minimum``, not equal to it

    def checked(self, value: Any, sampler: str) -> Any:
        """``value`` as this option's type, or a one-line error."""
        try:
            typed = self.type(value)
        except (TypeError, ValueError):
            raise UserInputError(f"{self.flag} of sampler '{sampler}' takes a {self.type.__name__}, got {value!r}") from None
        if self.choices and typed not in self.choices:
            raise UserInputError(f"{self.flag} of sampler '{sampler}' is one of {', '.join(self.choices)}, got {typed!r}")
        if self.minimum is not None and (typed <= self.minimum if self.minimum_excluded else typed < self.minimum):
            bound = "above" if self.minimum_excluded else "at least"
            raise UserInputError(f"{self.flag} of sampler '{sampler}' must be {bound} {self.minimum:g}, got {typed!r}")
        return typed


@dataclass(frozen=True)
class SamplerInfo:
    """One sampler: its function (a callable, or ``"module:function"`` imported on first use) and its facts."""

    name: str
    title: str  # in the panel and the help
    label: str  # in result tables
    default_steps: int
    description: str
    function: str | Callable[..., Any]
    options: tuple[SamplerOption, ...] = ()
    adaptive_when: tuple[str, Any] | None = None  # (option, value) with which the solver picks its own steps
    evaluations: Callable[[int, dict[str, Any]], int] = lambda steps, options: steps  # NFE of (steps, options)

    def resolve(self) -> Callable[..., Any]:
        """The sampler function."""
        if callable(self.function):
            return self.function
        module, _, attribute = self.function.partition(":")
        return getattr(importlib.import_module(module), attribute)

    def uses_steps(self, options: dict[str, Any]) -> bool:
        """Whether a number of steps means anything with these options (not for an adaptive solver)."""
        if self.adaptive_when is None:
            return True
        option, value = self.adaptive_when
        default = next(o.default for o in self.options if o.name == option)
        return options.get(option, default) != value

    def network_evaluations(self, steps: int | None, options: dict[str, Any]) -> int | None:
        """Network evaluations per sample (NFE) for ``steps`` (None: the default); None for an adaptive solver."""
        if not self.uses_steps(options):
            return None
        return self.evaluations(steps or self.default_steps, options)

    def checked_options(self, options: dict[str, Any], steps: int | None) -> dict[str, Any]:
        """``options`` typed and checked: an option this sampler does not have, or steps it would ignore, is an error."""
        known = {option.name: option for option in self.options}
        unknown = sorted(set(options) - set(known))
        if unknown:
            every = all_sampler_options()
            flags = [every[name].flag if name in every else name for name in unknown]
            have = ", ".join(o.flag for o in self.options) or "none"
            raise UserInputError(f"option(s) {', '.join(flags)} do not apply to sampler '{self.name}' "
                                 f"(its options: {have})")
        typed = {name: known[name].checked(value, self.name) for name, value in options.items()}
        if steps is not None and not self.uses_steps(typed):
            option, value = self.adaptive_when
            raise UserInputError(f"sampler '{self.name}' with {known[option].flag} {value} chooses its own steps; "
                                 f"leave out the steps or choose another {known[option].flag}")
        return typed


SAMPLERS: dict[str, SamplerInfo] = {info.name: info for info in [
    SamplerInfo("ddpm", "DDPM", "DDPM", 6,
                "ancestral sampling; 1000 steps = paper 1's DDPM, fewer = respacing (with the default model, 4 to 25 "
                "are within 0.5 dB PSNR of 1000: benchmarks/mritoct_quality_nfe.py)", "MRItoCTLib.samplers:sample_ddpm"),
    SamplerInfo("em", "Euler–Maruyama", "EM", 1000, "reverse SDE, Euler–Maruyama (paper 1)",
                "MRItoCTLib.samplers:sample_euler_maruyama"),
    SamplerInfo("pc", "Predictor–Corrector", "PC", 1000,
                "reverse diffusion + Langevin corrector, snr 0.16 (paper 1); NFE = steps x (1 + corrector steps)",
                "MRItoCTLib.samplers:sample_predictor_corrector", (
                    SamplerOption("snr", float, 0.16, "--snr", "Langevin signal-to-noise ratio", minimum=0.0),
                    SamplerOption("corrector_steps", int, 1, "--corrector-steps", "Langevin corrector steps per time",
                                  minimum=0)),
                evaluations=lambda steps, options: steps * (1 + int(options.get("corrector_steps", 1)))),
    SamplerInfo("ode", "Probability-flow ODE", "ODE", 100,
                "adaptive RK45 at tolerance 1e-5 (paper 1; it picks its own steps), or fixed-step Heun/RK4",
                "MRItoCTLib.samplers:sample_ode", (
                    SamplerOption("method", str, "rk45", "--ode-method", "ODE solver; rk45 is adaptive",
                                  choices=("rk45", "heun", "rk4")),
                    SamplerOption("tolerance", float, 1e-5, "--tolerance", "rk45 relative and absolute tolerance",
                                  minimum=0.0, minimum_excluded=True)),
                adaptive_when=("method", "rk45"),
                evaluations=lambda steps, options: {"heun": 2, "rk4": 4}[options["method"]] * (steps - 1) + 1),
    SamplerInfo("ddim", "DDIM", "DDIM", 50, "deterministic at eta = 0", "MRItoCTLib.samplers:sample_ddim",
                (SamplerOption("eta", float, 0.0, "--eta", "DDIM noise level (0 = deterministic)", minimum=0.0),)),
    SamplerInfo("dpmpp", "DPM-Solver++", "DPM-Solver++", 20, "DPM-Solver++(2M) multistep, 10–25 steps",
                "MRItoCTLib.samplers:sample_dpmpp"),
]}


def sampler_info(name: str) -> SamplerInfo:
    """The registry entry of ``name``, or a one-line error naming the choices."""
    if name not in SAMPLERS:
        raise UserInputError(f"unknown sampler '{name}' (choose from {', '.join(SAMPLERS)})")
    return SAMPLERS[name]


def all_sampler_options() -> dict[str, SamplerOption]:
    """Every sampler option by name (options of the same name share one command-line flag)."""
    return {option.name: option for info in SAMPLERS.values() for option in info.options}


@dataclass(frozen=True)
class Preset:
    """A named quality setting of the panel's basic section: sampler, steps and Monte-Carlo samples."""

    name: str
    title: str
    sampler: str
    steps: int
    mc: int
    description: str


PRESETS: dict[str, Preset] = {preset.name: preset for preset in [
    Preset("fast", "Fast", "ddpm", 4, 2, "DDPM, 4 steps, 2 Monte-Carlo samples: a CT and a rough uncertainty"),
    Preset("standard", "Standard", "ddpm", 6, 4,
           "DDPM, 6 steps, 4 Monte-Carlo samples (the default; 6 steps are within 0.5 dB PSNR of 1000)"),
    Preset("paper", "Paper", "ddpm", 1000, 4,
           "DDPM, 1000 steps, 4 Monte-Carlo samples, as in paper 1 (about 170 times the Standard time)"),
]}
CUSTOM_PRESET = "custom"  # the panel's name for settings that match no preset


def matching_preset(sampler: str, steps: int, mc: int) -> str:
    """The name of the preset with these settings, or :data:`CUSTOM_PRESET`."""
    return next((p.name for p in PRESETS.values() if (p.sampler, p.steps, p.mc) == (sampler, steps, mc)),
                CUSTOM_PRESET)


DEFAULT_PRESET = "standard"
DEFAULT_SAMPLER = "ddpm"  # at its default 6 steps: within 0.5 dB PSNR of DDPM-1000 with the default model (README)
DEFAULT_MODEL = "mritoct-residual"  # CNN mean + diffused residual (docs/mritoct.md); mritoct-ddpm: the first model
SAMPLED_KINDS = ("diffusion", "residual")  # model kinds run by a sampler (the rest: one pass each)
DEFAULT_MC_SAMPLES = 4
DEFAULT_SEED = 0
