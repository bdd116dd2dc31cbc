"""Every sampler reproduces a known data distribution when given its exact denoiser.

For i.i.d. Gaussian or two-component Gaussian-mixture voxels, E[eps | x_t] is
analytic. Tolerances: 5 standard errors of the estimate for the number of
draws, plus a stated discretisation allowance for the step counts used here.
"""

import math

import pytest

from CTSynthesisCore.errors import UserInputError
import torch

from analytic import GaussianMixtureDenoiser, gaussian_denoiser
from MRItoCTLib.processes import VEProcess, VPProcess
from MRItoCTLib.catalog import SAMPLERS
from MRItoCTLib.samplers import get_sampler

PROCESSES = {"vp": VPProcess(), "ve": VEProcess(sigma_min=0.01, sigma_max=25.0)}
# steps (and options) per sampler in these tests; rk45 at 1e-4 keeps the test fast
SETTINGS = {
    "ddpm": dict(steps=1000),
    "em": dict(steps=500),
    "pc": dict(steps=300, corrector_steps=1),
    "ode": dict(method="rk45", tolerance=1e-4),
    "ddim": dict(steps=100),
    "dpmpp": dict(steps=20),
}
SHAPE = (64, 1, 16, 16)  # 64 samples of 256 i.i.d. voxels: 16384 draws
DRAWS = math.prod(SHAPE)
DISCRETISATION = 0.02  # relative allowance on mean/std for the step counts above


def _draw(name, process, denoiser, seed=0, **extra):
    generator = torch.Generator().manual_seed(seed)
    return get_sampler(name)(denoiser, None, process, generator=generator, shape=SHAPE, **{**SETTINGS[name], **extra})


@pytest.mark.parametrize("process_name", list(PROCESSES))
@pytest.mark.parametrize("name", list(SAMPLERS))
def test_gaussian_target_mean_and_std(name, process_name):
    process = PROCESSES[process_name]
    mean, std = 0.5, 0.3
    result = _draw(name, process, gaussian_denoiser(process, mean, std))
    x = result.sample.double().flatten()
    mean_tolerance = 5 * std / math.sqrt(DRAWS) + DISCRETISATION * std
    std_tolerance = 5 * std / math.sqrt(2 * (DRAWS - 1)) + DISCRETISATION * std
    assert abs(float(x.mean()) - mean) < mean_tolerance, f"{name}/{process_name} mean {float(x.mean()):.4f}"
    assert abs(float(x.std()) - std) < std_tolerance, f"{name}/{process_name} std {float(x.std()):.4f}"
    assert result.nfe >= 1


@pytest.mark.parametrize("process_name", list(PROCESSES))
@pytest.mark.parametrize("name", list(SAMPLERS))
def test_mixture_target_weights_mean_and_std(name, process_name):
    process = PROCESSES[process_name]
    weights, means, stds = (0.3, 0.7), (-0.6, 0.6), (0.15, 0.15)
    result = _draw(name, process, GaussianMixtureDenoiser(process, weights, means, stds), seed=1)
    x = result.sample.double().flatten()
    mean = sum(w * m for w, m in zip(weights, means))
    std = math.sqrt(sum(w * (s**2 + m**2) for w, m, s in zip(weights, means, stds)) - mean**2)
    upper_share = float((x > 0).double().mean())
    share_tolerance = 5 * math.sqrt(0.3 * 0.7 / DRAWS) + 0.01
    assert abs(upper_share - 0.7) < share_tolerance, f"{name}/{process_name} weight {upper_share:.4f}"
    assert abs(float(x.mean()) - mean) < 5 * std / math.sqrt(DRAWS) + DISCRETISATION * std
    assert abs(float(x.std()) - std) < 5 * std / math.sqrt(2 * DRAWS) + DISCRETISATION * std
    # modes are separated: few samples fall in the valley between them
    assert float((x.abs() < 0.15).double().mean()) < 0.05


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_same_seed_same_output_and_different_seed_differs(name):
    process = PROCESSES["vp"]
    denoiser = gaussian_denoiser(process, 0.0, 0.5)
    extra = {"steps": 10} if name != "ode" else {"method": "heun", "steps": 10}
    first = _draw(name, process, denoiser, seed=7, **extra).sample
    again = _draw(name, process, denoiser, seed=7, **extra).sample
    other = _draw(name, process, denoiser, seed=8, **extra).sample
    assert torch.equal(first, again)
    assert not torch.allclose(first, other)


def test_ddim_eta_zero_is_deterministic_given_initial_noise():
    process = PROCESSES["vp"]
    denoiser = gaussian_denoiser(process, 0.2, 0.4)
    x_init = torch.randn(SHAPE, generator=torch.Generator().manual_seed(3))
    a = get_sampler("ddim")(denoiser, None, process, steps=25, x_init=x_init, eta=0.0,
                            generator=torch.Generator().manual_seed(1)).sample
    b = get_sampler("ddim")(denoiser, None, process, steps=25, x_init=x_init, eta=0.0,
                            generator=torch.Generator().manual_seed(2)).sample
    assert torch.equal(a, b)
    c = get_sampler("ddim")(denoiser, None, process, steps=25, x_init=x_init, eta=1.0,
                            generator=torch.Generator().manual_seed(2)).sample
    assert not torch.allclose(a, c)


def test_nfe_counts():
    process = PROCESSES["vp"]
    denoiser = gaussian_denoiser(process, 0.0, 1.0)
    shape = (2, 1, 4, 4)
    assert get_sampler("ddpm")(denoiser, None, process, steps=30, shape=shape).nfe == 30
    assert get_sampler("dpmpp")(denoiser, None, process, steps=12, shape=shape).nfe == 12
    assert get_sampler("pc")(denoiser, None, process, steps=10, corrector_steps=2, shape=shape).nfe == 30
    assert get_sampler("ode")(denoiser, None, process, steps=11, method="heun", shape=shape).nfe == 2 * 10 + 1
    assert get_sampler("ode")(denoiser, None, process, steps=11, method="rk4", shape=shape).nfe == 4 * 10 + 1
    # N(0, 1) data makes the VP flow vanish; a narrower target gives the solver real work
    narrow = gaussian_denoiser(process, 0.3, 0.2)
    adaptive = get_sampler("ode")(narrow, None, process, method="rk45", tolerance=1e-3, shape=shape,
                                  generator=torch.Generator().manual_seed(0)).nfe
    tighter = get_sampler("ode")(narrow, None, process, method="rk45", tolerance=1e-6, shape=shape,
                                 generator=torch.Generator().manual_seed(0)).nfe
    assert 7 <= adaptive < tighter


def test_callback_sees_every_step_and_cancel_stops():
    from CTSynthesisCore.errors import Cancelled
    from CTSynthesisCore.progress import CancelToken

    process = PROCESSES["vp"]
    denoiser = gaussian_denoiser(process, 0.0, 1.0)
    steps_seen = []
    get_sampler("ddim")(denoiser, None, process, steps=8, shape=(1, 1, 2, 2),
                        callback=lambda step, total, x0: steps_seen.append((step, total, tuple(x0.shape))))
    assert [s for s, _, _ in steps_seen] == list(range(1, 9)) and steps_seen[0][1:] == (8, (1, 1, 2, 2))
    token = CancelToken()

    def cancel_at_three(step, total, x0):
        if step == 3:
            token.cancel()

    with pytest.raises(Cancelled):
        get_sampler("ddpm")(denoiser, None, process, steps=50, shape=(1, 1, 2, 2), callback=cancel_at_three, cancel=token)


def test_unknown_sampler_name():
    with pytest.raises(UserInputError, match="unknown sampler 'euler'"):
        get_sampler("euler")

