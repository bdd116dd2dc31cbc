"""The time estimate the panel shows before a run (``MRItoCTLib.estimate``)."""

import pytest

from MRItoCTLib.catalog import SAMPLERS
from MRItoCTLib.estimate import CONFIRM_ABOVE_SECONDS, RunEstimate, duration_text, estimate_run, volume_layout

AXIAL = (1, 0, 0, 0, 1, 0, 0, 0, 1)
SAGITTAL = (0, 0, 1, 1, 0, 0, 0, 1, 0)  # voxel axis i runs along y, j along z (head-foot), k along x


def test_slices_are_counted_along_the_head_foot_axis():
    axial = volume_layout((256, 200, 40), (1.0, 1.5, 3.0), AXIAL)
    assert axial.slices == 40 and axial.extent_mm == (256.0, 300.0)
    sagittal = volume_layout((30, 256, 200), (4.0, 1.0, 1.0), SAGITTAL)
    assert sagittal.slices == 256 and sagittal.extent_mm == (120.0, 200.0)
    assert axial.model_pixels((2.0, 2.0)) == 128 * 150


def test_network_evaluations_per_sampler():
    assert SAMPLERS["ddpm"].network_evaluations(None, {}) == SAMPLERS["ddpm"].default_steps
    assert SAMPLERS["pc"].network_evaluations(100, {"corrector_steps": 2}) == 300
    assert SAMPLERS["ode"].network_evaluations(5, {"method": "heun"}) == 9
    assert SAMPLERS["ode"].network_evaluations(5, {"method": "rk4"}) == 17
    assert SAMPLERS["ode"].network_evaluations(None, {}) is None, "adaptive RK45 picks its own steps"


def test_estimate_scales_with_every_factor_and_deterministic_models_run_once():
    layout = volume_layout((200, 200, 10), (2.0, 2.0, 3.0), AXIAL)
    diffusion = {"kind": "diffusion", "spacing_mm": [2.0, 2.0], "cpu_cost": {"seconds_per_megapixel": 5.0,
                                                                              "measured_on": "2-core CPU"}}
    one = estimate_run(diffusion, layout, "ddpm", 10, 1)
    assert one.cpu_seconds == pytest.approx(10 * 1 * 10 * 0.04 * 5.0)
    assert estimate_run(diffusion, layout, "ddpm", 20, 4).cpu_seconds == pytest.approx(8 * one.cpu_seconds)
    regression = dict(diffusion, kind="regression")
    once = estimate_run(regression, layout, "ddpm", 1000, 8)
    assert (once.evaluations, once.mc) == (1, 1) and once.cpu_seconds == pytest.approx(one.cpu_seconds / 10)
    assert estimate_run({"kind": "diffusion"}, layout, "ddpm", 10, 1).cpu_seconds is None, "unmeasured model"
    assert "unknown" in estimate_run(diffusion, layout, "ode", None, 1).text(False)


def test_confirmation_only_for_long_cpu_runs():
    long = RunEstimate(10, 4, 80, CONFIRM_ABOVE_SECONDS + 1, "2-core CPU")
    assert long.needs_confirmation(gpu_expected=False) and not long.needs_confirmation(gpu_expected=True)
    assert not RunEstimate(10, 4, 80, CONFIRM_ABOVE_SECONDS - 1, "2-core CPU").needs_confirmation(False)
    assert "GPU" in long.text(gpu_expected=True) and "2-core CPU" in long.text(gpu_expected=False)


@pytest.mark.parametrize("seconds, text", [(40, "40 s"), (420, "7 min"), (4800, "1 h 20 min")])
def test_durations_in_words(seconds, text):
    assert duration_text(seconds) == text
