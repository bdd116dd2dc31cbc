"""Residual diffusion: a frozen regression mean plus a sampled residual, trained, saved, loaded and synthesized."""

import json

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from MRItoCTLib.baselines import RegressionConfig
from MRItoCTLib.cli import main
from MRItoCTLib.model import load_model
from MRItoCTLib.model_types import Draw, kind_of, model_kind
from MRItoCTLib.residual import ResidualConfig, ResidualDiffusion

TINY = dict(channels=(8, 16), attention_levels=(False, False), norm_num_groups=4, num_head_channels=8)
TINY_MEAN = RegressionConfig(channels=(8, 16), strides=(2,)).to_dict()


def tiny_residual(prediction: str = "v") -> ResidualDiffusion:
    torch.manual_seed(0)
    config = ResidualConfig(context_slices=1, prediction=prediction, mean_network=TINY_MEAN, **TINY)
    return ResidualDiffusion(config, clip_x0=True).eval()


def test_the_unet_sees_the_mri_and_the_mean_and_the_kind_is_told_apart_from_plain_diffusion():
    network = tiny_residual()
    assert network.config.condition_channels == 3 and network.config.unet_condition_channels == 4
    assert kind_of(network).name == "residual" and model_kind("residual").stochastic
    assert not any(p.requires_grad for p in network.mean_network.parameters())
    network.train()
    assert not network.mean_network.training, "batch-norm statistics of the mean network stay frozen"
    round_trip = ResidualConfig.from_dict(json.loads(json.dumps(network.config.to_dict())))
    assert round_trip == network.config


def test_a_zero_residual_gives_back_the_regression_mean_with_any_sampler():
    """With x0-prediction and a zeroed output layer, the sampled residual is 0: every sample is the CNN's CT."""
    network = tiny_residual(prediction="x0")
    for parameter in network.unet.out.parameters():
        torch.nn.init.zeros_(parameter)
    condition = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
    mean = network.mean(condition)
    for sampler in ("ddim", "ddpm"):
        draw = Draw(sampler, 4, {}, torch.Generator().manual_seed(0))
        ct, nfe = model_kind("residual").draw(network, network, condition, draw)
        torch.testing.assert_close(ct, mean, atol=1e-5, rtol=0)
        assert nfe >= 4


def test_stacked_monte_carlo_copies_share_one_mean_pass_and_give_the_same_samples():
    network = tiny_residual()
    condition = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(2)) * 2 - 1
    stacked = condition.repeat(3, 1, 1, 1)
    calls = []
    network.mean_network.register_forward_hook(lambda module, inputs, output: calls.append(inputs[0].shape[0]))
    once = model_kind("residual").draw(network, network, stacked, Draw("ddim", 3, {}, torch.Generator().manual_seed(0),
                                                                       copies=3))[0]
    every = model_kind("residual").draw(network, network, stacked, Draw("ddim", 3, {}, torch.Generator().manual_seed(0)))[0]
    assert calls == [2, 6]
    torch.testing.assert_close(once, every)


def test_mirrored_copies_each_get_their_own_mean_computed_once_per_distinct_copy():
    """Copies that differ (test-time flips mirror some) get the regression mean of their own condition: a zero
    residual gives back each copy's mean, not the first copy's; a copy repeated is not computed again."""
    network = tiny_residual(prediction="x0")
    for parameter in network.unet.out.parameters():
        torch.nn.init.zeros_(parameter)
    condition = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(3)) * 2 - 1
    stacked = torch.cat([condition, condition.flip(-1), condition])
    calls = []
    network.mean_network.register_forward_hook(lambda module, inputs, output: calls.append(inputs[0].shape[0]))
    ct = model_kind("residual").draw(network, network, stacked, Draw("ddim", 2, {}, torch.Generator().manual_seed(0),
                                                                     copies=3))[0]
    assert calls == [2, 2], "the MRI as is and its mirror, once each"
    torch.testing.assert_close(ct, network.mean(stacked), atol=1e-5, rtol=0)


def test_the_residual_is_scaled_and_clipped_as_sampled_x0_is():
    network = tiny_residual()
    mean = torch.zeros(1, 1, 2, 2)
    ct = torch.tensor([[[[0.05, -0.1], [0.9, -0.9]]]])
    target = network.residual_target(ct, mean)
    torch.testing.assert_close(target, torch.tensor([[[[0.2, -0.4], [1.0, -1.0]]]]))
    torch.testing.assert_close(network.ct_from_residual(mean[..., :1, :], target[..., :1, :]), ct[..., :1, :])


@pytest.fixture(scope="module")
def trained_cnn(tmp_path_factory, small_dataset):
    out = tmp_path_factory.mktemp("cnn")
    assert main(["train", "--data", str(small_dataset), "--model", "cnn", "--out", str(out), "--steps-per-epoch", "2",
                 "--batch-size", "2", "--crop", "32", "--channels", "8", "16", "--epochs", "1", "--quiet"]) == 0
    return out / "last"


def test_residual_training_keeps_the_mean_network_and_the_model_synthesizes(tmp_path, small_dataset, trained_cnn,
                                                                            capsys):
    from MRItoCTLib.pipeline import synthesize
    from MRItoCTLib.settings import SynthesisSettings

    out = tmp_path / "residual"
    common = ["train", "--data", str(small_dataset), "--model", "residual", "--out", str(out), "--steps-per-epoch", "2",
              "--batch-size", "2", "--crop", "32", "--channels", "8", "16", "--quiet"]
    assert main([*common, "--epochs", "1", "--mean-model", str(trained_cnn)]) == 0
    assert main([*common, "--epochs", "2", "--resume", "--mean-model", str(trained_cnn)]) == 0
    cnn, model = load_model(str(trained_cnn)), load_model(str(out / "last"))
    assert model.kind.name == "residual" and model.metadata["training"]["config"]["mean_model"] == str(trained_cnn)
    mean_record = model.metadata["training"]["mean_model"]  # its training counts in the model's CPU hours
    assert mean_record["sha256"] == cnn.metadata["sha256"] and mean_record["seconds"] == round(cnn.metadata["training"]["seconds"])
    assert "Mean network (frozen)" in (out / "last" / "MODEL_CARD.md").read_text(encoding="utf-8")
    for name, weight in cnn.network.state_dict().items():  # frozen: the CNN's weights and statistics, unchanged
        torch.testing.assert_close(model.network.mean_network.state_dict()[name], weight)
    case = sorted(p for p in small_dataset.iterdir() if p.is_dir())[0]
    mri = sitk.ReadImage(str(case / "mr.nii.gz"))
    result = synthesize(mri, model, SynthesisSettings(sampler="ddim", steps=3, mc=2, seed=0))
    assert result.ct.GetSize() == mri.GetSize() and result.ct.GetOrigin() == mri.GetOrigin()
    assert result.ct.GetSpacing() == mri.GetSpacing() and result.ct.GetDirection() == mri.GetDirection()
    ct, spread = sitk.GetArrayFromImage(result.ct), sitk.GetArrayFromImage(result.uncertainty)
    assert np.isfinite(ct).all() and spread.max() > 0
    # fine-tuning this model (--init) on another CNN's mean, even one of another size, keeps that CNN, not the mean
    # stored in the init weights
    other_cnn = tmp_path / "other_cnn"
    assert main(["train", "--data", str(small_dataset), "--model", "cnn", "--out", str(other_cnn), "--steps-per-epoch",
                 "2", "--batch-size", "2", "--crop", "32", "--channels", "4", "8", "--epochs", "1", "--seed", "1",
                 "--quiet"]) == 0
    assert main([*common, "--epochs", "1", "--out", str(tmp_path / "tuned"), "--init", str(out / "last"),
                 "--mean-model", str(other_cnn / "last")]) == 0
    tuned = load_model(str(tmp_path / "tuned" / "last")).network.mean_network.state_dict()
    for name, weight in load_model(str(other_cnn / "last")).network.state_dict().items():
        torch.testing.assert_close(tuned[name], weight)
    capsys.readouterr()
    assert main([*common, "--epochs", "1", "--out", str(tmp_path / "no_mean")]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "--mean-model" in error[0]
    assert main([*common, "--epochs", "1", "--out", str(tmp_path / "wrong_mean"), "--mean-model",
                 str(out / "last")]) == 2
    assert "not a regression" in capsys.readouterr().err
