"""Cross-view engine: view plumbing, geometry, losses, training, adaptation, model folders, CLI."""

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from CTSynthesisCore.errors import UserInputError
from CTSynthesisCore.volume_io import read_volume
from SliceInterpLib.cli import main
from SliceInterpLib.crossview import (axial_neighbours, fused_views, gap_passes, images_per_level, observed_slices,
                                      plane_stacks, upsample_crossview, view_predictions)
from SliceInterpLib.model import load_crossview, save_crossview
from SliceInterpLib.networks import INTENSITY, CrossViewConfig, CrossViewNet, widened
from SliceInterpLib.research.training import restoration_psnr
from SliceInterpLib.selfsupervised import (MAX_RANDOM_THICKNESS, RowSampling, TrainConfig, TrainingVolume, adapt,
                                           augmented_block, distillation_loss, inplane_restoration_loss, inplane_rows,
                                           optimise, restoration_loss, thick_rows)

TINY = CrossViewConfig(channels=(8, 16), strides=(2,), num_res_units=1)


@pytest.fixture(scope="module")
def ct(ct_sample) -> sitk.Image:
    return sitk.ReadImage(str(ct_sample))[30:94, 20:84, 40:64]


@pytest.fixture(scope="module")
def tiny_crossview(tmp_path_factory) -> str:
    """A small cross-view model folder (random weights) for the mechanics tests."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("models") / "tiny-crossview"
    save_crossview(folder, CrossViewNet(TINY), {"name": "tiny-crossview"})
    return str(folder)


def random_residual(seed: int = 0, config: CrossViewConfig = TINY) -> CrossViewNet:
    """A tiny network whose output heads are random too (a fresh network's heads are zero)."""
    torch.manual_seed(seed)
    network = CrossViewNet(config)
    with torch.no_grad():
        for view in (network.axial, network.planar):
            view[-1].weight.normal_(0, 0.1)
    return network.eval()


def test_axial_neighbours_repeat_the_edges():
    volume = torch.arange(5.0)[:, None, None].expand(5, 2, 2)
    picked = axial_neighbours(volume, torch.tensor([0, 3]), neighbours=2)[:, :, 0, 0]
    assert picked.tolist() == [[0, 0, 1, 2], [2, 3, 4, 4]]


def test_untrained_network_is_linear_interpolation_in_every_view(ct):
    network = CrossViewNet(TINY).eval()
    volume = INTENSITY.to_network(torch.from_numpy(sitk.GetArrayFromImage(ct).astype(np.float32)))
    views = view_predictions(network, volume, batch_size=7)
    linear = 0.5 * (volume[:-1] + volume[1:])
    for view in views:
        torch.testing.assert_close(view, linear, atol=1e-6, rtol=0)
    position = torch.rand(volume.shape[0] - 1)  # each gap its own position
    at = position.view(-1, 1, 1)
    for view in view_predictions(network, volume, batch_size=5, position=position):
        torch.testing.assert_close(view, (1 - at) * volume[:-1] + at * volume[1:], atol=1e-6, rtol=0)


def test_models_without_position_input_load_and_refuse_other_positions():
    """Models saved before position input (metadata without the key) build the networks they were trained with."""
    stored = {k: v for k, v in TINY.to_dict().items() if k != "position_input"}
    old = CrossViewNet(CrossViewConfig.from_dict(stored))
    assert not old.config.position_input and old.axial[0].model[0].conv.unit0.conv.in_channels == 4
    assert CrossViewNet(TINY).axial[0].model[0].conv.unit0.conv.in_channels == 5
    volume = torch.zeros(4, 16, 16)
    assert view_predictions(old, volume, position=torch.full((3,), 0.5)).shape == (3, 3, 16, 16)
    with pytest.raises(ValueError, match="half-way"):
        view_predictions(old, volume, position=torch.full((3,), 1 / 3))


def test_views_of_weight_zero_are_not_run_and_the_new_slices_are_the_weighted_mean(ct, tmp_path):
    """A model's view_weights (axial, coronal, sagittal) weight the views' mean; a view of weight 0 is not run
    (progress counts only the images of the views run); the disagreement is the plain std of the views run."""
    network = random_residual(3, replace(TINY, view_weights=(0.0, 1.0, 3.0)))
    volume = INTENSITY.to_network(torch.from_numpy(sitk.GetArrayFromImage(ct).astype(np.float32)))
    counted = []
    with torch.no_grad():
        mean, disagreement = fused_views(network, volume, batch_size=9, done=counted.append)
        views = view_predictions(network, volume)
    assert sum(counted) == images_per_level(tuple(volume.shape), (1, 2)) == volume.shape[1] + volume.shape[2]
    torch.testing.assert_close(mean, (views[1] + 3 * views[2]) / 4, atol=1e-6, rtol=0)
    torch.testing.assert_close(disagreement, (views[1] - views[2]).abs() / 2, atol=1e-6, rtol=0)
    assert CrossViewConfig.from_dict({k: v for k, v in TINY.to_dict().items() if k != "view_weights"}).view_weights \
        == (1 / 3, 1 / 3, 1 / 3), "models saved before view weights existed take the paper's equal mean"
    folder = tmp_path / "bad-weights"
    save_crossview(folder, network, {"name": "bad-weights"})
    metadata = json.loads((folder / "metadata.json").read_text(encoding="utf-8"))
    metadata["network"]["view_weights"] = [0, 0, 0]
    (folder / "metadata.json").write_text(json.dumps(metadata), encoding="utf-8")
    with pytest.raises(UserInputError, match="no valid network"):
        load_crossview(str(folder))


def test_a_model_without_position_input_widens_into_a_position_model_that_starts_as_it():
    """--init from an older model: the new input channel gets zero weights, so half-way (position channel 0) the
    widened network is exactly the old one, and elsewhere its residual is the old one's over the new base."""
    old = random_residual(2, replace(TINY, position_input=False))
    widened = CrossViewNet(TINY)
    widened.load_widened(old.state_dict(), old.config)
    widened.eval()
    volume = torch.randn(5, 24, 24) * 0.3
    with torch.no_grad():
        assert torch.equal(view_predictions(widened, volume), view_predictions(old, volume))
        third = torch.full((4,), 1 / 3)
        residual = view_predictions(widened, volume, position=third) - (2 * volume[:-1] + volume[1:]) / 3
        torch.testing.assert_close(residual, view_predictions(old, volume) - (volume[:-1] + volume[1:]) / 2,
                                   atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="does not widen"):
        CrossViewNet(TINY).load_widened(CrossViewNet(replace(TINY, channels=(4, 16))).state_dict(), TINY)


def test_plane_stacks_hold_each_plane_between_its_neighbours_with_the_edges_repeated():
    volume = torch.arange(4 * 5 * 6, dtype=torch.float32).view(4, 5, 6)  # (Z, Y, X)
    coronal = plane_stacks(volume, torch.tensor([0, 3]), axis=1, context=1)
    assert coronal.shape == (2, 3, 4, 6)
    assert torch.equal(coronal[0], torch.stack([volume[:, 0], volume[:, 0], volume[:, 1]]))
    assert torch.equal(coronal[1], torch.stack([volume[:, 2], volume[:, 3], volume[:, 4]]))
    sagittal = plane_stacks(volume, torch.tensor([5]), axis=2, context=2)
    assert sagittal.shape == (1, 5, 4, 5)
    assert torch.equal(sagittal[0], torch.stack([volume[:, :, x] for x in (3, 4, 5, 5, 5)]))
    axial = plane_stacks(volume, torch.tensor([3]), axis=0, context=1)
    assert torch.equal(axial[0], torch.stack([volume[2], volume[3], volume[3]]))


def test_a_2d_model_widens_into_a_2p5d_one_that_starts_as_it_and_sees_its_neighbours_after_training(ct):
    """--planar-context with --init: the new planes' input weights are zero, so the widened model gives the 2D model's
    slices at every position; the in-plane loss reaches those weights, so training can use the new planes."""
    old = random_residual(4)
    wide = widened(old, planar_context=1)
    assert wide.config.planar_context == 1 and wide.config.planar_planes == 3
    volume = torch.randn(6, 24, 20) * 0.3
    position = torch.rand(5)
    with torch.no_grad():
        torch.testing.assert_close(view_predictions(wide, volume, position=position),
                                   view_predictions(old, volume, position=position), atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="parallel planes"):
        wide.planar_between(torch.zeros(2, 8, 16))
    with pytest.raises(ValueError, match="cannot be narrowed"):
        widened(wide, planar_context=0)
    with pytest.raises(ValueError, match="does not widen"):  # another axial window would shift its slices
        CrossViewNet(replace(TINY, planar_context=1)).load_widened(old.state_dict(), replace(TINY, neighbours=1))
    wide.train()
    block = TrainingVolume.from_image(ct, "ct").values[:8, :32, :32]
    inplane_restoration_loss(wide, block, RowSampling(1, 2), 4, np.random.default_rng(0)).backward()
    first = next(p for name, p in wide.planar.named_parameters() if p.dim() == 4)
    assert first.grad[:, [0, 1, 4, 5]].abs().sum() > 0, "the neighbouring planes' weights learn"


@pytest.mark.parametrize("ratio, observed, positions", [
    (3, [0, -1, -1, 1, -1, -1, 2], [[1 / 3, 1 / 3], [2 / 3, 2 / 3]]),
    (2.5, [0, -1, -1, -1, -1, 2], [[0.4, 0.2], [0.8, 0.6]]),  # 5 mm -> 2 mm: slices at 0, 0.4, 0.8, 1.2, 1.6, 2
])
def test_new_slices_are_predicted_at_their_positions_in_their_gaps(ratio, observed, positions):
    assert observed_slices(3, ratio).tolist() == observed
    passes = gap_passes(3, ratio)
    np.testing.assert_allclose([p.positions for p in passes], positions)
    made = sorted(int(i) for p in passes for i in p.outputs if i >= 0)
    assert made == [i for i, o in enumerate(observed) if o < 0], "every new slice exactly once"


def test_views_swap_under_in_plane_transposition(ct):
    """Transposing y and x must swap what the coronal and sagittal views predict (orientation bookkeeping)."""
    network = random_residual(1)
    volume = INTENSITY.to_network(torch.from_numpy(sitk.GetArrayFromImage(ct).astype(np.float32)))
    with torch.no_grad():
        views = view_predictions(network, volume)
        swapped = view_predictions(network, volume.transpose(1, 2).contiguous())
    torch.testing.assert_close(swapped[1], views[2].transpose(1, 2), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(swapped[2], views[1].transpose(1, 2), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(views[1], views[2])


@pytest.mark.parametrize("factor", [2, 3, 4])
def test_crossview_grid_and_bit_exact_observed_slices(ct, make_oblique, factor):
    image = make_oblique(ct)
    result = upsample_crossview(image, image.GetSpacing()[2] / factor, random_residual())
    assert result.image.GetSize() == (*image.GetSize()[:2], (image.GetSize()[2] - 1) * factor + 1)
    np.testing.assert_allclose(result.image.GetSpacing(), (*image.GetSpacing()[:2], image.GetSpacing()[2] / factor))
    assert result.image.GetOrigin() == image.GetOrigin() and result.image.GetDirection() == image.GetDirection()
    assert result.image.GetPixelID() == image.GetPixelID()
    values = sitk.GetArrayViewFromImage(result.image)
    assert np.array_equal(values[::factor], sitk.GetArrayViewFromImage(image))
    spread = sitk.GetArrayViewFromImage(result.disagreement)
    assert result.disagreement.GetSize() == result.image.GetSize()
    assert spread.min() >= 0 and np.all(spread[::factor] == 0) and spread.max() > 0
    assert result.levels == {2: 1, 3: 0, 4: 2}[factor], "x3 is one step at two positions, not x4 and resampling"


def test_factor_three_slices_are_the_networks_at_one_and_two_thirds(ct):
    network = random_residual()
    image = sitk.Cast(ct, sitk.sitkFloat32)
    values = sitk.GetArrayFromImage(upsample_crossview(image, ct.GetSpacing()[2] / 3, network).image)
    volume = INTENSITY.to_network(torch.from_numpy(sitk.GetArrayFromImage(image)))
    with torch.no_grad():
        for offset in (1, 2):
            views = view_predictions(network.eval(), volume, position=torch.full((volume.shape[0] - 1,), offset / 3))
            np.testing.assert_allclose(values[offset::3], views.mean(dim=0).numpy() * INTENSITY.scale, atol=0.02)


def test_older_models_still_reach_other_factors_through_the_finest_level(ct, make_oblique):
    image = make_oblique(ct)
    old = random_residual(config=replace(TINY, position_input=False))
    result = upsample_crossview(image, image.GetSpacing()[2] / 3, old)
    assert result.levels == 2 and result.image.GetSize()[2] == (image.GetSize()[2] - 1) * 3 + 1
    assert np.array_equal(sitk.GetArrayViewFromImage(result.image)[::3], sitk.GetArrayViewFromImage(image))


def test_untrained_network_reproduces_linear_interpolation_on_the_volume(ct):
    from SliceInterpLib.classical import upsample_classical

    image = sitk.Cast(ct, sitk.sitkFloat32)
    crossview = upsample_crossview(image, ct.GetSpacing()[2] / 4, CrossViewNet(TINY)).image
    linear = upsample_classical(image, ct.GetSpacing()[2] / 4, "linear")
    np.testing.assert_allclose(sitk.GetArrayFromImage(crossview), sitk.GetArrayFromImage(linear), atol=0.05)


def test_distillation_keeps_the_most_consistent_fraction():
    network = random_residual().train()
    block = torch.randn(8, 16, 16) * 0.1
    assert distillation_loss(CrossViewNet(TINY), block, keep=0.25) < 1e-7  # all views agree
    loss = distillation_loss(network, block, keep=0.25)
    loss.backward()
    assert loss > 0 and all(p.grad is not None for p in network.parameters())
    assert distillation_loss(network, block, keep=1.0) > loss  # the worst-agreeing voxels raise the loss
    two_levels = distillation_loss(network, block, keep=0.25, levels=2)  # x2 and x4 above the block
    assert torch.isfinite(two_levels) and two_levels != loss


def test_training_restores_dropped_slices_better_than_linear(ct):
    """A hundred steps on one volume must beat the untrained (linear) start on that volume."""
    volume = TrainingVolume.from_image(ct, "ct")
    torch.manual_seed(0)
    network = CrossViewNet(TINY)
    before = restoration_psnr(network, volume)
    optimise(network, [volume], TrainConfig(steps=100, block_slices=12, block_size=64, learning_rate=3e-3,
                                            distill_from=0.5))
    assert restoration_psnr(network, volume) > before + 0.02  # deterministic: +0.041 dB measured
    block = volume.values[:8, :32, :32]
    assert restoration_loss(network, block).item() < restoration_loss(CrossViewNet(TINY), block).item()


def test_thick_rows_average_a_box_profile_every_step():
    images = torch.arange(12.0).view(1, 12, 1).expand(2, 12, 3)  # each row holds its own index
    rows = thick_rows(images, step=2, width=4)
    assert rows.shape == (2, 5, 3)  # rows 0-3, 2-5, 4-7, 6-9, 8-11
    assert torch.equal(rows[0, :, 0], torch.tensor([1.5, 3.5, 5.5, 7.5, 9.5]))


def test_thin_profile_rows_are_pixel_rows_spaced_like_dropped_slices():
    """Width 1 is what dropping slices of a thin CT gives: single pixel rows, one every step."""
    images = torch.arange(12.0).view(1, 12, 1).expand(2, 12, 3)
    assert torch.equal(thick_rows(images, step=2, width=1)[0, :, 0], torch.tensor([0.0, 2, 4, 6, 8, 10]))
    assert torch.equal(thick_rows(images, step=2, width=2)[0, :, 0], torch.tensor([0.5, 2.5, 4.5, 6.5, 8.5, 10.5]))


def test_inplane_rows_follow_the_scale_and_profile_settings():
    rng = np.random.default_rng(0)
    own = {inplane_rows((0.8, 0.8, 5.0), TrainConfig(inplane_weight=1, distill_levels=2), rng) for _ in range(50)}
    assert own == {RowSampling(3, 6), RowSampling(2, 4)}, "the volume's own 6.25 px spacing at levels 0 and 1, box"
    assert inplane_rows((1.5, 1.5, 1.5), TrainConfig(), rng) == RowSampling(1, 2), "an isotropic volume makes pairs"
    drawn = [inplane_rows((0.8, 0.8, 5.0), TrainConfig(inplane_scale="random", inplane_profile="random"), rng, True)
             for _ in range(600)]
    assert {r.stride for r in drawn} == {2, 3, 4} and all(1 <= r.offset < r.stride for r in drawn)
    assert {r.stride * r.step for r in drawn if r.stride == 2} == set(range(2, MAX_RANDOM_THICKNESS + 1, 2))
    assert all(r.stride * r.step <= MAX_RANDOM_THICKNESS and 1 <= r.width <= r.stride * r.step for r in drawn)
    assert {r.width for r in drawn if r.stride * r.step == 8} == set(range(1, 9))


@pytest.mark.parametrize("rows", [RowSampling(2, 4), RowSampling(1, 1, stride=3, offset=2)])
def test_untrained_inplane_loss_is_the_error_of_linear_interpolation_between_rows(ct, rows):
    """A fresh network is linear interpolation (at the dropped row's position), so its in-plane loss is linear
    interpolation's error on the rows."""
    block = TrainingVolume.from_image(ct, "ct").values[:6, :48, :40]
    loss = inplane_restoration_loss(CrossViewNet(TINY), block, rows, images=6, rng=np.random.default_rng(3))
    same_draws = np.random.default_rng(3)
    same_draws.choice(6, size=6, replace=False)  # every slice is used
    images = block.transpose(1, 2) if same_draws.random() < 0.5 else block
    made = thick_rows(images, rows.step, rows.width)
    kept, t = made[:, ::rows.stride], rows.offset / rows.stride
    linear = (1 - t) * kept[:, :-1] + t * kept[:, 1:]
    truth = made[:, rows.offset::rows.stride][:, :linear.shape[1]]
    assert loss.item() == pytest.approx((linear - truth).abs().mean().item(), rel=1e-5)
    assert loss.item() > 0


def test_untrained_restoration_loss_at_a_third_is_linear_interpolation_at_a_third(ct):
    block = TrainingVolume.from_image(ct, "ct").values[:10, :32, :32]
    loss = restoration_loss(CrossViewNet(TINY), block, phase=1, stride=3, offset=1)
    kept = block[1::3]
    truth = block[2::3][:len(kept) - 1]
    linear = (2 * kept[:-1] + kept[1:]) / 3
    assert loss.item() == pytest.approx((linear - truth).abs().mean().item(), rel=1e-5)


def test_inplane_training_lowers_the_inplane_loss(ct):
    volume = TrainingVolume.from_image(ct, "ct")
    block = volume.values[:8, :48, :48]
    torch.manual_seed(0)
    network = CrossViewNet(TINY)
    rows = RowSampling(1, 2)
    before = inplane_restoration_loss(network, block, rows, 8, np.random.default_rng(0)).item()
    optimise(network, [volume], TrainConfig(steps=40, block_slices=8, block_size=48, learning_rate=3e-3,
                                            distill_weight=0.0, inplane_weight=1.0))
    after = inplane_restoration_loss(network, block, rows, 8, np.random.default_rng(0)).item()
    assert after < before


def test_augmentation_scales_about_water_adds_noise_and_keeps_the_clipping_range(ct):
    block = TrainingVolume.from_image(ct, "ct").values[:8, :48, :48]
    rng = np.random.default_rng(0)
    assert augmented_block(block, TrainConfig(), rng) is block, "without augmentation the block is untouched"
    assert rng.integers(100) == np.random.default_rng(0).integers(100), "and so is the random stream"
    scaled = augmented_block(block, TrainConfig(augment_contrast=0.2), np.random.default_rng(1))
    factor = 1 + np.random.default_rng(1).uniform(-0.2, 0.2)
    inside = (block * factor).abs() < 1  # not clipped: soft tissue and bone below 1000 HU
    assert torch.allclose(scaled[inside], block[inside] * factor, atol=1e-6), "HU scaled about water (0 HU)"
    noisy = augmented_block(block, TrainConfig(augment_noise_hu=40.0), np.random.default_rng(2))
    draws = np.random.default_rng(2)
    draws.uniform(0.0, 0.0)  # the contrast factor's draw (no contrast augmentation here)
    expected_std = draws.uniform(0, 40.0)
    soft = (block.abs() < 0.5) & (noisy.abs() < 0.5)
    assert (noisy - block)[soft].std().item() * INTENSITY.scale == pytest.approx(expected_std, rel=0.1)
    air = torch.full((4, 16, 16), INTENSITY.hu_min / INTENSITY.scale)
    noisy_air = augmented_block(air, TrainConfig(augment_noise_hu=40.0), np.random.default_rng(2))
    assert noisy_air.min() == air.min() and noisy_air.max() > air.max(), "clipped at air, as inference clips"
    again = augmented_block(block, TrainConfig(augment_noise_hu=40.0), np.random.default_rng(2))
    assert torch.equal(noisy, again), "deterministic with the seed"


def test_training_applies_the_augmentation(ct):
    volume = TrainingVolume.from_image(ct, "ct")
    trained = []
    for noise in (0.0, 50.0):
        torch.manual_seed(0)
        network = CrossViewNet(TINY)
        optimise(network, [volume], TrainConfig(steps=2, block_slices=8, block_size=32, distill_weight=0.0,
                                                augment_noise_hu=noise))
        trained.append(torch.cat([parameter.flatten() for parameter in network.parameters()]))
    assert not torch.equal(*trained), "the same seed with noise added must train differently"


def test_training_is_deterministic_with_a_seed(ct):
    volume = TrainingVolume.from_image(ct, "ct")
    weights = []
    for _ in range(2):
        torch.manual_seed(0)
        network = CrossViewNet(TINY)
        optimise(network, [volume], TrainConfig(steps=4, block_slices=10, block_size=32, seed=5, distill_from=0.5))
        weights.append(network.state_dict())
    assert all(torch.equal(value, weights[1][key]) for key, value in weights[0].items())


def test_adaptation_changes_a_copy_and_leaves_the_input_alone(ct):
    network = random_residual()
    original = {k: v.clone() for k, v in network.state_dict().items()}
    before = sitk.GetArrayFromImage(ct).copy()
    reports = []
    tuned = adapt(network, ct, minutes=0.03, seed=3, progress=lambda done, total, message="": reports.append(done))
    assert np.array_equal(sitk.GetArrayViewFromImage(ct), before)
    assert all(torch.equal(v, original[k]) for k, v in network.state_dict().items())
    tuned_state = tuned.state_dict()
    assert any(not torch.equal(v, original[k]) for k, v in tuned_state.items() if k.startswith("planar."))
    assert all(torch.equal(v, original[k]) for k, v in tuned_state.items() if k.startswith("axial.")), \
        "adaptation trains the coronal/sagittal network in-plane only"
    assert reports and reports == sorted(reports)


def test_model_folder_round_trip_and_corruption(tmp_path):
    torch.manual_seed(0)
    network = CrossViewNet(TINY)
    folder = save_crossview(tmp_path / "m", network, {"name": "m"})
    loaded, metadata = load_crossview(str(folder))
    assert metadata["task"] == "sliceinterp" and loaded.config == TINY
    for key, value in network.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key])
    with open(folder / "model.pt", "ab") as handle:
        handle.write(b"x")
    with pytest.raises(UserInputError, match="corrupt"):
        load_crossview(str(folder))
    metadata = json.loads((folder / "metadata.json").read_text(encoding="utf-8"))
    metadata["task"] = "mritoct"
    (folder / "metadata.json").write_text(json.dumps(metadata), encoding="utf-8")
    with pytest.raises(UserInputError, match="not a SliceInterp model"):
        load_crossview(str(folder))


def test_cli_crossview_writes_volume_and_disagreement(tmp_path, ct, tiny_crossview, capsys):
    source = tmp_path / "ct.nii.gz"
    sitk.WriteImage(ct, str(source))
    output, spread = tmp_path / "fine.nii.gz", tmp_path / "spread.nii.gz"
    code = main(["upsample", str(source), "--output", str(output), "--factor", "2", "--model", tiny_crossview,
                 "--disagreement", str(spread), "--device", "cpu", "--quiet"])
    assert code == 0, capsys.readouterr().err
    fine, disagreement = read_volume(output), read_volume(spread)
    assert fine.GetSize()[2] == 2 * ct.GetSize()[2] - 1 and disagreement.GetSize() == fine.GetSize()
    assert np.array_equal(sitk.GetArrayViewFromImage(fine)[::2], sitk.GetArrayViewFromImage(ct))
    assert "crossview on cpu" in capsys.readouterr().out


def test_cli_adapt_runs_within_its_budget(tmp_path, ct, tiny_crossview, capsys):
    source = tmp_path / "ct.nii.gz"
    sitk.WriteImage(ct, str(source))
    output = tmp_path / "fine.nii.gz"
    code = main(["upsample", str(source), "--output", str(output), "--factor", "2", "--model", tiny_crossview,
                 "--adapt", "--adapt-minutes", "0.05", "--quiet"])
    assert code == 0 and output.exists()
    assert "adapted to this volume" in capsys.readouterr().out


@pytest.mark.parametrize("args,expected", [
    (["--method", "linear", "--disagreement", "u.nii.gz"], "needs --method crossview"),
    (["--method", "cubic", "--adapt"], "needs the crossview method"),
    (["--adapt", "--adapt-minutes", "0"], "must be positive"),
    (["--model", "no-such-model"], "not found"),
    (["--device", "tpu"], "unknown device"),
])
def test_cli_crossview_errors(tmp_path, ct_sample, capsys, args, expected):
    output = tmp_path / "out.nii.gz"
    args = [a if a != "u.nii.gz" else str(tmp_path / a) for a in args]
    assert main(["upsample", str(ct_sample), "--output", str(output), "--factor", "2", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and expected in err[0], err
    assert not output.exists()


def test_cli_refuses_nan_input(tmp_path, ct, capsys):
    array = sitk.GetArrayFromImage(ct).astype(np.float32)
    array[3, 4, 5] = np.nan
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(ct)
    path = tmp_path / "nan.mha"  # NIfTI writing in ITK turns NaN into 0
    sitk.WriteImage(image, str(path))
    assert main(["upsample", str(path), "--output", str(tmp_path / "o.nii.gz"), "--factor", "2"]) == 2
    assert "NaN" in capsys.readouterr().err


def test_cli_train_then_evaluate(tmp_path, ct, capsys):
    source = tmp_path / "train.nii.gz"
    sitk.WriteImage(ct, str(source))
    run = tmp_path / "run"
    assert main(["train", "--data", str(source), "--out", str(run), "--steps", "6", "--block-slices", "10",
                 "--block-size", "32", "--device", "cpu", "--quiet"]) == 0
    assert "restoring every other slice" in capsys.readouterr().out
    metadata = json.loads((run / "model" / "metadata.json").read_text(encoding="utf-8"))
    assert metadata["training"]["steps"] == 6 and (run / "model" / "MODEL_CARD.md").is_file()
    assert metadata["training"]["volumes"] == ["train.nii.gz"], "file names only: no local folders in a model"
    assert main(["train", "--data", str(source), "--out", str(run), "--steps", "8", "--block-slices", "10",
                 "--block-size", "32", "--resume", "--augment-contrast", "0.1", "--augment-noise", "20",
                 "--quiet"]) == 0
    resumed = json.loads((run / "model" / "metadata.json").read_text(encoding="utf-8"))["training"]
    assert resumed["steps"] == 8 and resumed["config"]["augment_noise_hu"] == 20
    assert "Gaussian noise up to 20.0 HU" in (run / "model" / "MODEL_CARD.md").read_text(encoding="utf-8")
    capsys.readouterr()
    report = tmp_path / "report"
    assert main(["evaluate", str(source), "--factor", "2", "--output", str(report), "--model", str(run / "model"),
                 "--methods", "linear", "crossview", "--device", "cpu", "--quiet", "--record"]) == 0
    table = (report / "metrics.md").read_text(encoding="utf-8")
    assert "| linear |" in table and "| crossview |" in table
    assert (report / "metrics.csv").is_file() and (report / "views_x2.png").stat().st_size > 10_000
    card = (run / "model" / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert "### Restoring removed slices of train.nii.gz at x2" in card and "| crossview |" in card
    assert "train.nii.gz was a training volume: not a held-out result" in card


def test_cli_train_from_a_model_records_it_and_checkpoints_while_training(tmp_path, ct, tiny_crossview, capsys):
    """--init starts from a model's weights (lineage in metadata and card); the checkpoint is written at every
    validation, so a cancelled run resumes from its last validation step."""
    from CTSynthesisCore.errors import Cancelled
    from CTSynthesisCore.progress import CancelToken
    from SliceInterpLib.research.training import train

    source = tmp_path / "train.nii.gz"
    sitk.WriteImage(ct, str(source))
    parent = json.loads((Path(tiny_crossview) / "metadata.json").read_text(encoding="utf-8"))
    token, run = CancelToken(), tmp_path / "run"
    config = TrainConfig(steps=6, block_slices=10, block_size=32, validate_every=2, inplane_weight=1.0,
                         inplane_scale="random", inplane_profile="random")

    def cancel_at_step_three(done: int, total: int, message: str = "") -> None:
        if done == 3:
            token.cancel()

    with pytest.raises(Cancelled):
        train([source], run, config, progress=cancel_at_step_three, cancel=token, init=tiny_crossview)
    checkpoint = torch.load(run / "checkpoint.pt", weights_only=True)
    assert checkpoint["step"] == 2 and checkpoint["initialised_from"]["sha256"] == parent["sha256"]
    assert checkpoint["network_config"] == TINY.to_dict()
    assert main(["train", "--data", str(source), "--out", str(run), "--steps", "6", "--block-slices", "10",
                 "--block-size", "32", "--resume", "--quiet"]) == 0
    metadata = json.loads((run / "model" / "metadata.json").read_text(encoding="utf-8"))
    assert metadata["training"]["steps"] == 6 and metadata["training"]["initialised_from"]["model"] == "tiny-crossview"
    assert "Initialised from `tiny-crossview`" in (run / "model" / "MODEL_CARD.md").read_text(encoding="utf-8")
    fresh = tmp_path / "fresh"
    assert main(["train", "--data", str(source), "--out", str(fresh), "--steps", "1", "--block-slices", "10",
                 "--block-size", "32", "--init", tiny_crossview, "--lr", "1e-9", "--quiet"]) == 0
    started = load_crossview(str(fresh / "model"))[0].state_dict()
    assert all(torch.allclose(value, started[key], atol=1e-6)
               for key, value in load_crossview(tiny_crossview)[0].state_dict().items())


def test_cli_train_channels_set_the_size_of_a_new_network(tmp_path, ct, tiny_crossview, capsys):
    """--channels builds both view networks at that size (a x2 stride between levels), stored in the model; a
    model from --init or a checkpoint fixes its own size, so --channels with either is refused. --view-weights
    sets how the trained model fuses its views."""
    source = tmp_path / "train.nii.gz"
    sitk.WriteImage(ct, str(source))
    common = ["train", "--data", str(source), "--steps", "1", "--block-slices", "10", "--block-size", "32", "--quiet"]
    assert main([*common, "--out", str(tmp_path / "small"), "--channels", "4", "8"]) == 0
    network, metadata = load_crossview(str(tmp_path / "small" / "model"))
    assert metadata["network"]["channels"] == [4, 8] and metadata["network"]["strides"] == [2]
    default = sum(p.numel() for p in CrossViewNet().parameters())
    assert sum(p.numel() for p in network.parameters()) < default / 50
    assert main([*common, "--out", str(tmp_path / "planar"), "--channels", "4", "8", "--view-weights", "0", "1",
                 "1"]) == 0
    planar, metadata = load_crossview(str(tmp_path / "planar" / "model"))
    assert metadata["network"]["view_weights"] == [0, 1, 1] and planar.config.used_views == (1, 2)
    card = (tmp_path / "planar" / "model" / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert "axial 0.00, coronal 0.50, sagittal 0.50" in card, "the card is rendered from the metadata as saved"
    assert f"sha256 `{metadata['sha256'][:12]}`" in card
    assert main([*common, "--out", str(tmp_path / "none"), "--view-weights", "0", "0", "0"]) == 2
    assert "--view-weights" in capsys.readouterr().err
    assert main([*common, "--out", str(tmp_path / "wide"), "--channels", "4", "8", "--planar-context", "2"]) == 0
    assert load_crossview(str(tmp_path / "wide" / "model"))[0].config.planar_context == 2
    assert main([*common, "--out", str(tmp_path / "widened"), "--init", str(tmp_path / "wide" / "model"),
                 "--planar-context", "1"]) == 2
    assert "cannot be narrowed" in capsys.readouterr().err
    assert main([*common, "--out", str(tmp_path / "wide"), "--planar-context", "1", "--resume"]) == 2
    assert "--planar-context" in capsys.readouterr().err
    for extra in (["--init", tiny_crossview], ["--resume"], ["--channels", "8"]):
        capsys.readouterr()
        channels = [] if "--channels" in extra else ["--channels", "4", "8"]
        assert main([*common, "--out", str(tmp_path / "small"), *channels, *extra]) == 2
        assert "--channels" in capsys.readouterr().err


def test_cli_train_and_evaluate_errors(tmp_path, capsys):
    assert main(["train", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "r"), "--quiet"]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "missing.nii.gz"), "--factor", "2", "--output", str(tmp_path / "e")]) == 2
    assert capsys.readouterr().err.startswith("error:")
    assert main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "r"), "--resume", "--quiet"]) == 2
    assert main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "r"), "--restoration-weight", "0",
                 "--distill-weight", "0", "--quiet"]) == 2
    assert "at least one above 0" in capsys.readouterr().err
    assert main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "r"), "--augment-contrast", "1",
                 "--quiet"]) == 2
    assert "--augment-contrast must be below 1" in capsys.readouterr().err
    assert main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "r"), "--augment-noise", "-5"]) == 2
    assert "must be at least 0" in capsys.readouterr().err
    assert main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "r"), "--augment-noise", "inf"]) == 2
    assert "must be a finite number" in capsys.readouterr().err


def test_crossview_scenario_oblique_under_slicer_core(mrml_scene, ct, make_oblique, tiny_crossview):
    import unittest

    from SliceInterpLib.slicer.scenarios import run_upsample_scenario

    run_upsample_scenario(mrml_scene, unittest.TestCase(), image=make_oblique(ct), factor=2, model=tiny_crossview)


def test_cancel_leaves_the_output_node_untouched(mrml_scene, ct, tiny_crossview):
    from CTSynthesisCore.errors import Cancelled
    from CTSynthesisCore.slicer.mrml import update_volume_node_from_image
    from CTSynthesisCore.progress import CancelToken
    from SliceInterpLib.slicer.nodes import upsample_nodes
    from SliceInterpLib.settings import UpsampleSettings

    input_node = mrml_scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "CT")
    update_volume_node_from_image(input_node, ct)
    output_node = mrml_scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "out")
    token = CancelToken()

    def cancel_midway(done, total, message=""):
        if done > total // 3:
            token.cancel()

    with pytest.raises(Cancelled):
        upsample_nodes(input_node, output_node, factor=4, settings=UpsampleSettings(model=tiny_crossview, device="cpu"),
                       progress=cancel_midway, cancel=token)
    assert output_node.GetImageData() is None
    assert np.array_equal(sitk.GetArrayFromImage(ct), _node_array(input_node))


def _node_array(node):
    from CTSynthesisCore.slicer.mrml import image_from_volume_node

    return sitk.GetArrayFromImage(image_from_volume_node(node))


def test_fused_inference_network_equals_the_trained_one(ct):
    import copy

    network = random_residual(2)
    fused = copy.deepcopy(network).fused_for_inference().eval()
    assert not any(isinstance(m, torch.nn.PReLU) for m in fused.modules())
    volume = INTENSITY.to_network(torch.from_numpy(sitk.GetArrayFromImage(ct).astype(np.float32)))
    with torch.inference_mode():
        torch.testing.assert_close(view_predictions(fused, volume), view_predictions(network, volume), atol=1e-5, rtol=1e-5)


def test_target_spacing_that_does_not_divide_matches_the_classical_grid(ct):
    from SliceInterpLib.classical import finer_grid

    result = upsample_crossview(ct, 1.25, random_residual())
    reference = finer_grid(ct, 1.25)
    assert result.image.GetSize() == reference.GetSize() and result.disagreement.GetSize() == reference.GetSize()
    assert result.image.GetSpacing() == reference.GetSpacing() and result.image.GetOrigin() == ct.GetOrigin()
    assert result.levels == 0  # 3 mm -> 1.25 mm: the networks at each new slice's position, no x2 levels
    values, spread = sitk.GetArrayViewFromImage(result.image), sitk.GetArrayViewFromImage(result.disagreement)
    observed = sitk.GetArrayViewFromImage(ct)
    assert np.array_equal(values[::12], observed[::5]) and np.all(spread[::12] == 0)  # 15 mm: on both grids
    assert np.all(spread[1::12] > 0)
