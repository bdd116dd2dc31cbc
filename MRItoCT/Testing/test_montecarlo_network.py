"""Monte-Carlo running moments, and the denoiser's parameterizations."""

import pytest
import torch

from MRItoCTLib.montecarlo import RunningMoments, monte_carlo
from MRItoCTLib.network import ConditionalDenoiser, DenoiserConfig, diffusion_loss


@pytest.mark.parametrize("chunk", [1, 3, 7, 10])
def test_running_moments_match_direct_computation_for_any_chunking(chunk):
    samples = torch.randn(10, 2, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 3 + 1
    position = 0

    def draw(first, count):
        nonlocal position
        assert first == position
        out = samples[position:position + count]
        position += count
        return out, 5

    result = monte_carlo(draw, 10, chunk, keep_samples=True)
    torch.testing.assert_close(result.mean, samples.mean(0))
    torch.testing.assert_close(result.std, samples.std(0))
    assert result.nfe == 5 and len(result.samples) == 10


def test_running_moments_hold_constant_memory():
    moments = RunningMoments()
    for _ in range(50):
        moments.add(torch.randn(4, 8, 8))
    assert moments.mean.shape == (8, 8) and moments.m2.shape == (8, 8) and moments.count == 200


def test_single_sample_has_zero_spread():
    result = monte_carlo(lambda first, k: (torch.ones(k, 3), 1), 1, 4)
    assert torch.equal(result.std, torch.zeros(3))


TINY = dict(channels=(8, 16), attention_levels=(False, False), norm_num_groups=4, num_head_channels=8)


@pytest.mark.parametrize("prediction,process", [("eps", "vp"), ("x0", "vp"), ("v", "vp"), ("eps", "ve"), ("x0", "ve")])
def test_parameterizations_recover_x0_and_eps_from_their_target(prediction, process):
    model = ConditionalDenoiser(DenoiserConfig(prediction=prediction, process=process, **TINY))
    generator = torch.Generator().manual_seed(0)
    x0 = torch.rand(3, 1, 8, 8, generator=generator) * 2 - 1
    eps = torch.randn(3, 1, 8, 8, generator=generator)
    t = torch.tensor([0.05, 0.5, 0.95])
    alpha, sigma = model._alpha_sigma(t, x0)
    noisy = alpha * x0 + sigma * eps
    x0_hat, eps_hat = model.x0_and_eps(model.training_target(x0, eps, t), noisy, t)
    torch.testing.assert_close(x0_hat, x0, atol=2e-4, rtol=1e-4)
    torch.testing.assert_close(eps_hat, eps, atol=2e-4, rtol=1e-4)


def test_v_prediction_needs_vp():
    with pytest.raises(ValueError, match="VP"):
        ConditionalDenoiser(DenoiserConfig(prediction="v", process="ve", **TINY))


def test_context_slices_add_condition_channels_and_loss_backpropagates():
    model = ConditionalDenoiser(DenoiserConfig(context_slices=2, **TINY))
    assert model.config.condition_channels == 5
    ct = torch.zeros(2, 1, 16, 16)
    condition = torch.zeros(2, 5, 16, 16)
    loss = diffusion_loss(model, ct, condition, generator=torch.Generator().manual_seed(0))
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    out = model(ct, torch.full((2,), 0.5), condition)
    assert out.shape == ct.shape
