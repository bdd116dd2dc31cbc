"""The sampler registry (MRItoCTLib/catalog.py) is the one place a sampler is described: adding one is an entry
plus its function, and everything else (command line, settings check, worker, panel list, evaluation tables,
help) follows from it."""

from __future__ import annotations

import pytest
import torch

from CTSynthesisCore.errors import UserInputError
from MRItoCTLib.catalog import SAMPLERS, SamplerInfo, SamplerOption
from MRItoCTLib.samplers import SampleResult, _start
from MRItoCTLib.settings import SynthesisSettings


def sample_toy(denoiser, condition, process, steps=3, generator=None, callback=None, cancel=None, shape=None,
               x_init=None, device=None, scale: float = 1.0) -> SampleResult:
    """A toy sampler: ``steps`` plain denoising steps from noise, x0 scaled by ``scale``."""
    x, run = _start(denoiser, condition, process, steps, generator, callback, cancel, shape, x_init, device)
    for step in range(steps):
        t = 1.0 - step / steps
        alpha, sigma = (float(v) for v in process.alpha_sigma(torch.tensor(t, dtype=torch.float64)))
        x0 = (x - sigma * run.eps(x, t)) / alpha * scale
        x = x0
        run.report(x0)
    return SampleResult(x, run.nfe)


TOY = SamplerInfo("toy", "Toy sampler", "TOY", 3, "for the registry test", sample_toy,
                  (SamplerOption("scale", float, 1.0, "--toy-scale", "x0 scale", minimum=0.0),))


@pytest.fixture
def toy_sampler(monkeypatch):
    monkeypatch.setitem(SAMPLERS, "toy", TOY)
    return TOY


def test_a_registered_toy_sampler_runs_everywhere(toy_sampler, tmp_path, tiny_model, t2_sample, capsys):
    """One registry entry plus its function: the CLI offers it and its option's flag, the settings check takes it,
    ``mritoct samplers`` lists it, and a synthesis runs it with the registered default steps."""
    import SimpleITK as sitk

    from MRItoCTLib.cli import build_parser, main, settings_from_arguments
    from MRItoCTLib.model import load_model
    from MRItoCTLib.pipeline import synthesize

    args = build_parser().parse_args(["synthesize", "in.nii.gz", "--output", "o.nii.gz", "--sampler", "toy",
                                      "--toy-scale", "0.5"])
    settings = settings_from_arguments(args)
    assert settings.sampler_options == {"scale": 0.5} and settings.resolved_steps == 3
    assert main(["samplers"]) == 0 and "Toy sampler" in capsys.readouterr().out
    mri = sitk.ReadImage(str(t2_sample))[100:164, 100:164, 10:13]
    result = synthesize(mri, load_model(str(tiny_model)), SynthesisSettings(sampler="toy", mc=2), device="cpu")
    assert result.nfe == 3 and result.sampler == "toy"


def test_the_evaluation_table_titles_a_new_sampler(toy_sampler):
    from MRItoCTLib.research.evaluation import EvaluationPlan, _steps_text

    assert _steps_text(EvaluationPlan(models=[], samplers=["toy"]), "toy") == "toy 3"
    assert SAMPLERS["toy"].label == "TOY"


@pytest.mark.parametrize("settings, message", [
    (SynthesisSettings(sampler="ddpm", sampler_options={"eta": 0.5}), "--eta do not apply to sampler 'ddpm'"),
    (SynthesisSettings(sampler="ode", steps=8), "chooses its own steps"),
    (SynthesisSettings(sampler="ode", sampler_options={"method": "euler"}), "one of rk45, heun, rk4"),
    (SynthesisSettings(sampler="pc", sampler_options={"corrector_steps": -1}), "at least 0"),
    (SynthesisSettings(sampler="ddim", sampler_options={"eta": "much"}), "takes a float"),
    (SynthesisSettings(sampler="ode", sampler_options={"tolerance": 0}), "must be above 0"),
])
def test_an_option_a_sampler_does_not_use_is_an_error(settings, message):
    with pytest.raises(UserInputError, match=message):
        settings.validated()


def test_the_sampling_is_described_as_the_result_tables_name_it():
    default = f"DDPM-{SAMPLERS['ddpm'].default_steps}, MC 4, flips, shifts"
    assert SynthesisSettings().describe_sampling(stochastic=True) == default
    assert SynthesisSettings(sampler="pc", steps=20, mc=2, test_time_flips=False,
                             test_time_shifts=False).describe_sampling(True) == "PC-20, MC 2"
    assert SynthesisSettings(sampler="ode", mc=3).describe_sampling(True) == "ODE, MC 3, flips, shifts", "rk45: its own steps"
    assert SynthesisSettings(mc=1).describe_sampling(True) == "DDPM-6, MC 1", "one sample is never mirrored"
    assert SynthesisSettings(steps=6).describe_sampling(stochastic=False) == "one pass"


def test_the_results_say_how_the_samples_were_drawn():
    from MRItoCTLib.jobs import augmentation_text

    assert augmentation_text(SynthesisSettings()) == (" (drawn in turn on the MRI as is, mirrored left-right and mirrored "
                                                      "anterior-posterior, and at shifts of the network's grid)")
    assert augmentation_text(SynthesisSettings(test_time_flips=False)) == " (drawn in turn at shifts of the network's grid)"
    assert augmentation_text(SynthesisSettings(mc=1)) == "", "one sample is neither mirrored nor shifted"


def test_steps_apply_to_the_fixed_step_ode_solvers():
    settings = SynthesisSettings(sampler="ode", steps=8, sampler_options={"method": "heun"}).validated()
    assert settings.resolved_steps == 8


def test_every_registered_function_exists_and_takes_its_options():
    import inspect

    for info in SAMPLERS.values():
        parameters = inspect.signature(info.resolve()).parameters
        assert {"denoiser", "condition", "process", "steps", "generator", "callback", "cancel"} <= set(parameters)
        assert {option.name for option in info.options} <= set(parameters), info.name
        for option in info.options:
            assert parameters[option.name].default == option.default, (info.name, option.name)
