"""The inference fast paths give the plain path's result within a stated tolerance, and fall back cleanly."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from CTSynthesisCore.acceleration import (CPU_BATCH_SIZE, FastNetwork, InferenceOptions, auto_batch_size,
                                          cgroup_cpu_limit, configure_cpu_threads)
from CTSynthesisCore.errors import UserInputError


@pytest.fixture(scope="module")
def t2_slab(t2_sample) -> sitk.Image:
    return sitk.ReadImage(str(t2_sample))[:, :, 8:12]


def _synthesize(t2_slab, tiny_model, **options) -> tuple[np.ndarray, list[str]]:
    from MRItoCTLib.model import load_model
    from MRItoCTLib.pipeline import synthesize
    from MRItoCTLib.settings import SynthesisSettings

    settings = SynthesisSettings(sampler="dpmpp", steps=3, mc=2, seed=1, **options)
    result = synthesize(t2_slab, load_model(str(tiny_model)), settings, device="cpu")
    return sitk.GetArrayFromImage(result.ct), without_anatomy_warning(result.warnings)


def without_anatomy_warning(warnings: list[str]) -> list[str]:
    """The run's warnings but the tiny model's expected one: its CT shows no hip bones."""
    from MRItoCTLib.anatomy import NO_HIP_BONES

    return [warning for warning in warnings if not warning.startswith(NO_HIP_BONES)]


@pytest.fixture(scope="module")
def plain_ct(t2_slab, tiny_model) -> np.ndarray:
    """The reference: fp32, NCHW, eager, an explicit batch of 8."""
    return _synthesize(t2_slab, tiny_model, precision="fp32", channels_last=False, batch_size=8)[0]


def test_channels_last_equals_plain_path(t2_slab, tiny_model, plain_ct):
    fast, warnings = _synthesize(t2_slab, tiny_model, precision="fp32", channels_last=True, batch_size=8)
    assert np.abs(fast - plain_ct).max() < 0.5  # HU: float32 summation order only
    assert warnings == []


def test_automatic_batch_size_on_cpu_is_the_cpu_default(t2_slab, tiny_model, plain_ct):
    automatic, _ = _synthesize(t2_slab, tiny_model, precision="fp32", channels_last=False)
    np.testing.assert_array_equal(automatic, plain_ct)  # auto = 8 on CPU: the same batches, the same noise
    assert auto_batch_size("cpu", lambda count: None, most=100) == CPU_BATCH_SIZE
    assert auto_batch_size("cpu", lambda count: None, most=3) == 3


def test_bf16_autocast_stays_close_to_fp32(t2_slab, tiny_model, plain_ct):
    low, _ = _synthesize(t2_slab, tiny_model, precision="bf16", channels_last=False, batch_size=8)
    body = plain_ct > -1000
    difference = np.abs(low - plain_ct)[body]
    assert 0 < difference.mean() < 5.0  # HU: autocast did run in bf16 (8-bit mantissa), and stays close


def test_torch_compile_equals_plain_path(t2_slab, tiny_model, plain_ct):
    compiled, warnings = _synthesize(t2_slab, tiny_model, precision="fp32", channels_last=False, batch_size=8,
                                     compile="default")
    assert warnings == []  # compiled by Inductor, not the fallback
    assert np.abs(compiled - plain_ct).max() < 0.5


def test_failed_compilation_falls_back_to_the_plain_network(monkeypatch):
    """A compiler failure (simulated: the compiled callable raises as Inductor does without a C++ compiler)
    gives one warning and the eager result, and later calls skip the compiler."""
    def broken_compile(module, mode=None):
        def run(*args, **kwargs):
            raise RuntimeError("backend='inductor' raised:\nCppCompileError: C++ compile error")
        return run

    monkeypatch.setattr(torch, "compile", broken_compile)
    network = torch.nn.Conv2d(3, 1, 3, padding=1)
    warnings: list[str] = []
    fast = FastNetwork(network, "cpu", InferenceOptions(precision="fp32", compile="default"), warnings.append)
    inputs = torch.randn(2, 3, 8, 8)
    with torch.inference_mode():
        first, second, expected = fast(inputs), fast(inputs), network(inputs)
    assert torch.allclose(first, expected, atol=1e-6) and torch.allclose(second, expected, atol=1e-6)
    assert len(warnings) == 1 and warnings[0].startswith("torch.compile failed (RuntimeError: backend='inductor'")


def test_fast_network_returns_float32_under_autocast():
    network = torch.nn.Conv2d(3, 2, 3, padding=1)
    fast = FastNetwork(network, "cpu", InferenceOptions(precision="bf16"))
    with torch.inference_mode():
        output = fast(torch.randn(1, 3, 8, 8))
    assert output.dtype == torch.float32


@pytest.mark.parametrize("options, message", [
    (InferenceOptions(precision="fp64"), "unknown precision 'fp64'"),
    (InferenceOptions(compile="fast"), "unknown compile mode 'fast'"),
])
def test_unknown_options_are_user_errors(options, message):
    with pytest.raises(UserInputError, match=message):
        options.validated()


@pytest.mark.parametrize("content, expected", [("max 100000\n", None), ("150000 100000\n", 2), ("200000 100000", 2),
                                               ("50000 100000", 1)])
def test_container_cpu_quota(tmp_path, content, expected):
    (tmp_path / "cpu.max").write_text(content, encoding="utf-8")
    assert cgroup_cpu_limit(tmp_path) == expected
    assert cgroup_cpu_limit(tmp_path / "missing") is None


def test_cpu_threads_never_raised():
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert configure_cpu_threads() == 1
    finally:
        torch.set_num_threads(before)
    assert configure_cpu_threads() <= before


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_batch_size_from_free_memory():
    network = torch.nn.Conv2d(3, 64, 3, padding=1).cuda()
    batch = auto_batch_size("cuda", lambda count: network(torch.zeros(count, 3, 256, 256, device="cuda")), most=10_000)
    assert 1 <= batch <= 10_000


def test_sliceinterp_bf16_autocast_stays_close_to_fp32(ct_sample):
    from SliceInterpLib.upsample import upsample
    from SliceInterpLib.settings import UpsampleSettings

    image = sitk.Cast(sitk.ReadImage(str(ct_sample))[40:104, 30:94, 40:48], sitk.sitkFloat32)  # no rounding
    results = {precision: sitk.GetArrayFromImage(upsample(image, image.GetSpacing()[2] / 2, UpsampleSettings(
        device="cpu", precision=precision)).image).astype(np.float64)  # the shipped model
        for precision in ("fp32", "bf16")}
    difference = np.abs(results["bf16"] - results["fp32"])[1::2]  # the interpolated slices
    assert 0 < difference.mean() < 5.0  # HU
    np.testing.assert_array_equal(results["bf16"][::2], results["fp32"][::2])  # observed slices pass unchanged
