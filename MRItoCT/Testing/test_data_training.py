"""Paired data (phantom, CT-derived), case split, training with resume, evaluation and demo commands."""

import csv
import json

import numpy as np
import pytest
import SimpleITK as sitk

from MRItoCTLib.cli import main
from MRItoCTLib.research.ct_pairs import ANCHOR_INDEX, pair_from_ct, tissue_fractions
from MRItoCTLib.research.dataset import cases_in_split, find_cases, split_of
from MRItoCTLib.research.metrics import image_metrics, sparsification, spearman, uncertainty_metrics
from MRItoCTLib.research.phantom import phantom_labels
from MRItoCTLib.research.tissue import TISSUE_INDEX, render_labels


def test_phantom_tissues_have_t2_and_ct_ordering_of_real_images():
    rng = np.random.default_rng(4)
    labels = phantom_labels(rng, (240, 180), 2.0, 8)
    mri, ct = render_labels(labels, (2.0, 2.0, 3.0), rng, supersampling=1)
    mean_mri = {name: float(mri[labels == i].mean()) for name, i in TISSUE_INDEX.items() if (labels == i).sum() > 50}
    mean_ct = {name: float(ct[labels == i].mean()) for name, i in TISSUE_INDEX.items() if (labels == i).sum() > 50}
    # T2-weighted: urine and fat bright, muscle dark grey, cortical bone and air dark
    assert mean_mri["urine"] > mean_mri["prostate"] > mean_mri["muscle"]
    assert mean_mri["fat"] > 3 * mean_mri["muscle"]
    assert max(mean_mri["cortical_bone"], mean_mri["air"]) < mean_mri["muscle"] * 1.5
    # CT: bone bright, soft tissue 0-80, fat about -100, air -1000
    assert mean_ct["cortical_bone"] > 700 and mean_ct["marrow"] > 100
    assert 0 < mean_ct["muscle"] < 80 and -150 < mean_ct["fat"] < -50 and mean_ct["air"] < -950
    assert set(np.unique(labels)) >= {TISSUE_INDEX[n] for n in ["urine", "prostate", "rectal_wall", "marrow"]}


def test_tissue_fractions_sum_to_one_and_follow_hu():
    hu = np.array([-1200.0, -950, -500, -100, 0, 50, 140, 230, 800, 1400, 3000])
    fractions = tissue_fractions(hu)
    np.testing.assert_allclose(fractions.sum(0), 1.0, atol=1e-6)
    assert fractions[ANCHOR_INDEX["fat"], 3] == pytest.approx(1.0)
    assert fractions[ANCHOR_INDEX["cortical_bone"], -1] == pytest.approx(1.0)
    assert 0 < fractions[ANCHOR_INDEX["soft_tissue"], 6] < 1


def test_split_is_by_case_and_deterministic():
    names = [f"case_{i:03d}" for i in range(200)]
    splits = [split_of(n) for n in names]
    assert splits == [split_of(n) for n in names]
    shares = {s: splits.count(s) / len(names) for s in ("train", "validation", "test")}
    assert 0.55 < shares["train"] < 0.85 and 0.05 < shares["test"] < 0.3


def test_ct_derived_pairs_and_split_helpers(small_dataset):
    assert len(find_cases(small_dataset)) == 5
    assert [len(cases_in_split(small_dataset, s)) for s in ("train", "validation", "test")] == [3, 1, 1]
    case = find_cases(small_dataset)[0]
    mri, ct, mask = (sitk.ReadImage(str(case / f)) for f in ("mr.nii.gz", "ct.nii.gz", "mask.nii.gz"))
    assert mri.GetSize() == ct.GetSize() == mask.GetSize() and 2.5 <= ct.GetSpacing()[2] <= 4.0
    mri_a, ct_a, mask_a = (sitk.GetArrayFromImage(i) for i in (mri, ct, mask))
    assert ct_a[mask_a == 0].max() == -1024 and mri_a[mask_a == 0].mean() < mri_a[mask_a == 1].mean()
    fat = (ct_a > -130) & (ct_a < -70) & (mask_a == 1)
    muscle = (ct_a > 30) & (ct_a < 70) & (mask_a == 1)
    assert mri_a[fat].mean() > 2 * mri_a[muscle].mean()


def test_make_data_command(tmp_path, ct_sample, capsys):
    assert main(["make-data", "--out", str(tmp_path / "d"), "--cases", "1", "--seed", "3", "--from-ct",
                 str(ct_sample), "--quiet"]) == 0
    record = json.loads((tmp_path / "d" / "dataset.json").read_text(encoding="utf-8"))
    assert [c["kind"] for c in record["cases"]] == ["phantom", "ct-derived"]
    phantom = sitk.ReadImage(str(tmp_path / "d" / "phantom_0003_000" / "mr.nii.gz"))
    assert 0.8 <= phantom.GetSpacing()[0] <= 1.0 and phantom.GetSpacing()[2] == 3.0
    assert "2 cases" in capsys.readouterr().out
    assert main(["make-data", "--out", str(tmp_path / "e"), "--cases", "0", "--quiet"]) == 2


def test_cases_do_not_depend_on_the_number_of_workers(tmp_path, ct_sample):
    """Each case has its own seed: made in two processes, the data set is the one made in one."""
    crop = tmp_path / "crop.nii.gz"
    sitk.WriteImage(sitk.ReadImage(str(ct_sample))[20:90, 20:80, 40:52], str(crop))
    for workers in ("1", "2"):
        assert main(["make-data", "--out", str(tmp_path / workers), "--cases", "0", "--from-ct", str(crop),
                     "--per-ct", "3", "--workers", workers, "--quiet"]) == 0
    one, two = (json.loads((tmp_path / w / "dataset.json").read_text(encoding="utf-8")) for w in ("1", "2"))
    assert one == two and len(one["cases"]) == 3
    for case in one["cases"]:
        for name in ("mr.nii.gz", "ct.nii.gz", "mask.nii.gz"):
            first, second = (sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / w / case["name"] / name)))
                             for w in ("1", "2"))
            np.testing.assert_array_equal(first, second)
    assert main(["make-data", "--out", str(tmp_path / "0"), "--cases", "1", "--workers", "0", "--quiet"]) == 2


def test_making_cases_in_processes_can_be_cancelled(tmp_path, ct_sample):
    """Cancelling stops the workers between cases: the cases not yet started are never made, no dataset.json."""
    from CTSynthesisCore.errors import Cancelled
    from CTSynthesisCore.progress import CancelToken
    from MRItoCTLib.research.data_generation import make_dataset

    crop = tmp_path / "crop.nii.gz"
    sitk.WriteImage(sitk.ReadImage(str(ct_sample))[20:90, 20:80, 40:52], str(crop))
    cancel = CancelToken()
    with pytest.raises(Cancelled):
        make_dataset(tmp_path / "d", 0, 0, [str(crop)], per_ct=8, workers=2, cancel=cancel,
                     progress=lambda done, total, name: cancel.cancel())
    made = [folder for folder in (tmp_path / "d").iterdir() if folder.is_dir()]
    assert 1 <= len(made) < 8 and not (tmp_path / "d" / "dataset.json").exists()


def test_contrast_enhanced_ct_is_refused_unless_allowed(tmp_path, ct_sample, capsys):
    """A T2 image cannot show iodine: a CT angiogram's blood at 300 HU would be taught as bone-like tissue."""
    from MRItoCTLib.research.ct_pairs import CONTRAST_SHARE, enhanced_share

    ct = sitk.ReadImage(str(ct_sample))[20:90, 20:80, 40:52]
    assert enhanced_share(ct) < CONTRAST_SHARE, "the non-contrast sample CT passes"
    values = sitk.GetArrayFromImage(ct)
    inside = values > 0  # soft tissue and organs: fill them with contrast-enhanced blood
    values[inside] = 320
    enhanced = sitk.GetImageFromArray(values)
    enhanced.CopyInformation(ct)
    source = tmp_path / "cta.nii.gz"
    sitk.WriteImage(enhanced, str(source))
    assert main(["make-data", "--out", str(tmp_path / "d"), "--cases", "0", "--from-ct", str(source), "--quiet"]) == 2
    error = capsys.readouterr().err
    assert "looks contrast-enhanced" in error and "--allow-contrast" in error and not (tmp_path / "d").exists()
    assert main(["make-data", "--out", str(tmp_path / "d"), "--cases", "0", "--from-ct", str(source),
                 "--allow-contrast", "--quiet"]) == 0
    record = json.loads((tmp_path / "d" / "dataset.json").read_text(encoding="utf-8"))
    assert record["cases"][0]["enhanced_share"] > CONTRAST_SHARE


def test_copies_of_one_ct_share_its_split(tmp_path, ct_sample):
    """Augmented copies of one patient's CT must never be split between training and validation or test."""
    crop = tmp_path / "crop.nii.gz"
    sitk.WriteImage(sitk.ReadImage(str(ct_sample))[20:90, 20:80, 40:52], str(crop))
    assert main(["make-data", "--out", str(tmp_path / "d"), "--cases", "0", "--from-ct", str(crop), "--per-ct", "3",
                 "--quiet"]) == 0
    record = json.loads((tmp_path / "d" / "dataset.json").read_text(encoding="utf-8"))
    assert len(record["cases"]) == 3 and len({case["split"] for case in record["cases"]}) == 1
    assert "tissues" in record["ct_derived_recipe"]
    assert record["ct_derived_recipe"]["noise_share"] == [0.015, 0.035], "the acquisition's ranges are recorded"
    split = record["cases"][0]["split"]
    assert len(cases_in_split(tmp_path / "d", split)) == 3


@pytest.mark.parametrize("model_type", ["ddpm", "score", "cnn", "gan"])
def test_train_writes_models_and_resumes(tmp_path, small_dataset, model_type):
    out = tmp_path / model_type
    common = ["train", "--data", str(small_dataset), "--model", model_type, "--out", str(out), "--steps-per-epoch", "2",
              "--batch-size", "2", "--crop", "32", "--channels", "8", "16", "--quiet"]
    assert main([*common, "--epochs", "1"]) == 0
    assert main([*common, "--epochs", "2", "--resume"]) == 0
    with open(out / "train_log.csv", encoding="utf-8") as handle:
        log = list(csv.DictReader(handle))
    assert [row["epoch"] for row in log] == ["1", "2"] and log[1]["step"] == "4"
    metadata = json.loads((out / "best" / "metadata.json").read_text(encoding="utf-8"))
    assert metadata["training"]["steps"] >= 2 and np.isfinite(metadata["validation"]["mae_hu"])
    assert metadata["training"]["device"] == "cpu" and metadata["spacing_mm"] == [2.0, 2.0]


def test_train_joins_several_data_folders_and_refuses_a_case_in_two(tmp_path, small_dataset, capsys):
    cases = find_cases(small_dataset)
    for folder, part in (("first", cases[:2]), ("second", cases[2:]), ("again", cases[:1])):
        (tmp_path / folder).mkdir()
        for case in part:
            (tmp_path / folder / case.name).symlink_to(case)
    out = tmp_path / "run"
    common = ["train", "--model", "cnn", "--steps-per-epoch", "1", "--batch-size", "2", "--crop", "32",
              "--channels", "8", "16", "--epochs", "1", "--quiet"]
    assert main([*common, "--data", str(tmp_path / "first"), str(tmp_path / "second"), "--out", str(out)]) == 0
    training = json.loads((out / "last" / "metadata.json").read_text(encoding="utf-8"))["training"]
    assert sorted(training["train_cases"] + training["validation_cases"]) == sorted(
        c.name for c in cases_in_split(small_dataset, "train") + cases_in_split(small_dataset, "validation"))
    assert training["data"] == f"{tmp_path / 'first'} {tmp_path / 'second'}"
    capsys.readouterr()
    assert main([*common, "--data", str(tmp_path / "first"), str(tmp_path / "again"), "--out", str(out)]) == 2
    assert f"case {cases[0].name} is in both" in capsys.readouterr().err


def test_data_folders_rendered_with_different_recipes_are_each_recorded_and_carded(tmp_path):
    """Data made before and after a recipe changed trains together; the metadata keeps each folder's recipe and
    the card names what the later folder changed."""
    from MRItoCTLib.research.dataset import recipe_record
    from MRItoCTLib.research.model_card import recipes_text

    recipes = {"a": {"slice_mm": [2.5, 4.0]}, "b": {"slice_mm": [2.5, 4.0]},
               "c": {"slice_mm": [2.5, 4.0], "field_of_view_mm": [160.0, 300.0]}, "real": None}
    for folder, recipe in recipes.items():
        (tmp_path / folder).mkdir()
        if recipe:
            (tmp_path / folder / "dataset.json").write_text(json.dumps({"ct_derived_recipe": recipe}), encoding="utf-8")
    assert recipe_record([tmp_path / "a", tmp_path / "b", tmp_path / "real"]) == {"data_recipe": recipes["a"]}
    assert recipe_record(tmp_path / "real") == {"data_recipe": None}
    record = recipe_record([tmp_path / "a", tmp_path / "c"])
    assert record == {"data_recipe": None, "data_recipes": {str(tmp_path / "a"): recipes["a"],
                                                            str(tmp_path / "c"): recipes["c"]}}
    text = recipes_text(record)
    assert f"MRIs of `{tmp_path / 'a'}`" in text and "slice mm 2.5-4" in text
    assert f"Those of `{tmp_path / 'c'}`: the same but field of view mm 160-300." in text


def test_a_run_saved_before_its_type_kept_an_ema_resumes(tmp_path, small_dataset):
    """The CNN now validates and saves an EMA of its weights; a CNN checkpoint without one resumes, the average
    starting from its weights."""
    import torch

    from MRItoCTLib.model_types import model_type

    assert model_type("cnn").ema
    out = tmp_path / "cnn"
    common = ["train", "--data", str(small_dataset), "--model", "cnn", "--out", str(out), "--steps-per-epoch", "2",
              "--batch-size", "2", "--crop", "32", "--channels", "8", "16", "--quiet"]
    assert main([*common, "--epochs", "1"]) == 0
    checkpoint = torch.load(out / "checkpoint.pt", weights_only=False)
    assert "ema" in checkpoint
    del checkpoint["ema"]
    torch.save(checkpoint, out / "checkpoint.pt")
    assert main([*common, "--epochs", "2", "--resume"]) == 0
    assert "ema" in torch.load(out / "checkpoint.pt", weights_only=False)


def test_water_density_regions_of_the_ct_render_as_bright_fluid(monkeypatch):
    """A CT's homogeneous water-density region (a full bladder, 10 HU) is fluid on the T2, brighter than fat, as
    urine is on a real T2; the thin band where fat meets muscle (its HU crosses water's) is not."""
    from MRItoCTLib.research import ct_pairs

    spacing = (1.0, 1.0, 3.0)
    hu = np.full((3, 120, 120), 50.0)  # muscle
    hu[:, :, :30] = -100.0  # fat on the left: the boundary's 3 mm mean passes through water's HU
    y, x = np.mgrid[:120, :120]
    bladder = np.hypot(y - 60, x - 80) < 25
    hu[:, bladder] = 10.0
    hu += np.random.default_rng(0).normal(0.0, 5.0, hu.shape)
    fluid = ct_pairs.water_density_fluid(hu, spacing)
    inside = np.hypot(y - 60, x - 80) < 20
    assert fluid[1][inside].mean() > 0.95
    assert not fluid[1][:, 24:36].any() and not fluid[1][:, 40:50].any()  # the fat boundary and muscle
    monkeypatch.setitem(ct_pairs.RECIPE, "water_density_fluid_probability", 1.0)
    signals = ct_pairs.case_signals(np.random.default_rng(1))
    kinds = ct_pairs.soft_tissue_kinds(hu, spacing, np.random.default_rng(2))
    assert np.allclose(ct_pairs.soft_tissue_signal(kinds, signals)[1][inside], signals["fluid"])


def test_an_inserted_bladder_is_urine_in_a_muscular_wall_and_spares_bone():
    """The inserted bladder (augmentation) holds water-density urine rendered as fluid, ringed by a soft-tissue
    wall rendered as muscle; it sits deep in the body, displaces only fat and soft tissue, keeps its margin from
    bone, and leaves everything outside it as it was."""
    from MRItoCTLib.research import ct_pairs

    spacing = (1.5, 1.5, 3.0)
    _, y, x = np.mgrid[:20, :200, :200]
    inside = np.hypot(y - 100, x - 100) < 98
    hu = np.where(inside, -100.0, -1000.0)  # fat, so the wall (30-50 HU) stands out from it
    hu[:, 30:170, 30:170] = 50.0  # soft tissue where the bladder's centre may lie
    hu[:, 95:105, 95:105] = 700.0  # a bone through the centre
    clearance = ct_pairs.bone_clearance_mm(hu, spacing)
    bladder, kind = ct_pairs.with_fluid_cavity(hu, inside, clearance, spacing, np.random.default_rng(3))
    changed = bladder != hu
    urine, wall = kind == ct_pairs.SOFT_TISSUE_KINDS.index("fluid"), kind == ct_pairs.SOFT_TISSUE_KINDS.index("muscle")
    assert urine.sum() > 1000 and urine.any(axis=(1, 2)).sum() >= 3 and wall.sum() > 200
    assert np.array_equal(changed, urine | wall) and not (urine & wall).any() and np.all(kind[~changed] == -1)
    assert abs(np.median(bladder[urine]) - 7.5) < 10 and np.all(np.abs(bladder[urine] - 7.5) < 25)
    assert np.all(np.abs(bladder[wall] - 40.0) < 25)
    assert not changed[:, 95:105, 95:105].any() and not changed[~inside].any()
    margin = ct_pairs.RECIPE["fluid_cavity_bone_margin_mm"]
    near_bone = ct_pairs.distance_mm(hu > ct_pairs.BONE_EDGE_HU, spacing) <= margin
    assert near_bone.sum() > 1000 and not changed[near_bone].any(), "the bladder keeps its margin from bone"
    unchanged, none = ct_pairs.with_fluid_cavity(hu, np.zeros_like(inside), clearance, spacing,
                                                 np.random.default_rng(3))
    assert np.array_equal(unchanged, hu) and np.all(none == -1)
    signals = ct_pairs.case_signals(np.random.default_rng(1))
    signal = ct_pairs.soft_tissue_signal(ct_pairs.soft_tissue_kinds(bladder, spacing, np.random.default_rng(2), kind),
                                         signals)
    assert np.allclose(signal[urine], signals["fluid"]) and np.allclose(signal[wall], signals["muscle"])


def test_distance_to_a_mask_is_in_millimetres():
    """Not squared: SimpleITK's SignedMaurerDistanceMap squares its distances unless told not to."""
    from MRItoCTLib.research import ct_pairs

    mask = np.zeros((3, 5, 40), bool)
    mask[:, :, 0] = True
    distance = ct_pairs.distance_mm(mask, (1.5, 1.0, 3.0))
    assert distance[1, 2, 10] == pytest.approx(15.0) and distance[1, 2, 0] == 0.0


def test_soft_tissue_drawn_as_fluid_takes_water_density_in_the_training_ct_away_from_bone():
    """Recipe v11: where soft tissue is rendered as bright fluid beyond the bone margin, the training CT holds water
    (0-15 HU), as free water is; muscle- and organ-like regions, fat, bone, the soft tissue's partial volume and
    fluid-like regions next to bone keep their HU."""
    from MRItoCTLib.research import ct_pairs

    spacing = (1.0, 1.0, 1.0)
    hu = np.full((1, 1, 80), 50.0)
    hu[0, 0, 16:19] = [-100.0, 5.0, 150.0]  # fat, water and partial volume with bone, all far from bone
    hu[0, 0, 79] = 700.0  # bone
    fluid, organ = ct_pairs.SOFT_TISSUE_KINDS.index("fluid"), ct_pairs.SOFT_TISSUE_KINDS.index("organ")
    kinds = np.full(hu.shape, fluid, np.int8)
    kinds[0, 0, 5:10], kinds[0, 0, 10:15] = organ, ct_pairs.SOFT_TISSUE_KINDS.index("muscle")
    original = hu.copy()
    watered = ct_pairs.with_water_in_fluid(hu, kinds, ct_pairs.bone_clearance_mm(hu, spacing), np.random.default_rng(0))
    low, high = ct_pairs.RECIPE["fluid_region_hu"]
    beyond_margin = 79 - int(ct_pairs.RECIPE["fluid_cavity_bone_margin_mm"])  # first index within the margin
    water = np.r_[0:5, 15, 19:beyond_margin]
    assert np.all((watered[0, 0, water] > low - 12) & (watered[0, 0, water] < high + 12))
    kept = np.r_[5:15, 16:19, beyond_margin:80]
    assert np.array_equal(watered[0, 0, kept], hu[0, 0, kept]) and np.array_equal(hu, original), "input unchanged"


def test_held_out_pairs_get_no_bladder_and_training_pairs_may(ct_sample, monkeypatch):
    from MRItoCTLib.research import ct_pairs

    monkeypatch.setitem(ct_pairs.RECIPE, "fluid_cavity_probability", 1.0)
    ct = sitk.ReadImage(str(ct_sample))[10:110, 5:95, 30:60]
    water = {}
    for augment in (False, True):
        _, hu, mask = pair_from_ct(ct, np.random.default_rng(1), augment=augment)
        values = sitk.GetArrayFromImage(hu)[sitk.GetArrayFromImage(mask).astype(bool)]
        water[augment] = np.mean((values >= 0) & (values <= 15))
    monkeypatch.setitem(ct_pairs.RECIPE, "fluid_cavity_probability", 0.0)
    _, hu, mask = pair_from_ct(ct, np.random.default_rng(1), augment=False)
    plain = sitk.GetArrayFromImage(hu)[sitk.GetArrayFromImage(mask).astype(bool)]
    assert water[False] == np.mean((plain >= 0) & (plain <= 15)), "held-out pairs keep the CT as it is"
    assert water[True] > water[False] + 0.01


def air_around_a_long_body() -> sitk.Image:
    """A 400 x 400 x 360 mm CT: a 120 x 80 mm soft-tissue cylinder, 360 mm long, in air."""
    y, x = np.mgrid[:200, :200]
    body = ((x - 100) / 30.0) ** 2 + ((y - 90) / 20.0) ** 2 <= 1.0
    ct = sitk.GetImageFromArray(np.repeat(np.where(body, 40.0, -1000.0)[None], 120, axis=0).astype(np.float32))
    ct.SetSpacing((2.0, 2.0, 3.0))
    return ct


def test_a_training_pair_is_made_from_a_slab_of_the_body_not_the_whole_field_of_view():
    """Air beyond BODY_MARGIN_MM around the body is cropped in-plane and the slab is at most the recipe's field of
    view long: a whole planning CT rendered at once took 10.8 GB per pair."""
    from MRItoCTLib.research import ct_pairs

    slab = ct_pairs.training_field_of_view(air_around_a_long_body(), np.random.default_rng(0), (1.6, 1.6, 4.0))
    width, height, length = (n * s for n, s in zip(slab.GetSize(), slab.GetSpacing()))
    margin = 2 * ct_pairs.BODY_MARGIN_MM
    assert abs(width - (122 + margin)) <= 2 and abs(height - (82 + margin)) <= 2
    assert ct_pairs.RECIPE["field_of_view_mm"][0] - 3 <= length <= ct_pairs.RECIPE["field_of_view_mm"][1] + 3
    assert slab.GetOrigin()[:2] == pytest.approx((2.0 * (70 - 15), 2.0 * (70 - 15)))  # the body stays in place


def test_a_training_pair_keeps_its_rendering_grid_within_the_voxel_budget(monkeypatch):
    from MRItoCTLib.research import ct_pairs

    monkeypatch.setattr(ct_pairs, "RENDERED_VOXELS_MAX", 400_000)
    for seed in (0, 1):
        mri, _, _ = pair_from_ct(air_around_a_long_body(), np.random.default_rng(seed))
        columns, rows, slices = mri.GetSize()
        assert slices >= 1 and columns * rows * (slices - 1) * ct_pairs.THIN_PER_SLICE <= 400_000


def assert_same_weights(network, expected) -> None:
    """The learned weights of ``network`` equal ``expected``'s (batch-norm running statistics aside)."""
    import torch

    for name, weight in expected.state_dict().items():
        if weight.is_floating_point() and "running" not in name:
            torch.testing.assert_close(network.state_dict()[name], weight, atol=1e-6, rtol=0)


def test_init_fine_tunes_from_given_weights_and_records_them(tmp_path, small_dataset, capsys):
    from MRItoCTLib.model import load_model

    common = ["train", "--data", str(small_dataset), "--steps-per-epoch", "2", "--batch-size", "2", "--crop", "32",
              "--channels", "8", "16", "--epochs", "1", "--quiet"]
    assert main([*common, "--model", "cnn", "--out", str(tmp_path / "start")]) == 0
    start = load_model(str(tmp_path / "start" / "last"))
    assert main([*common, "--model", "cnn", "--out", str(tmp_path / "tuned"), "--init", str(tmp_path / "start" / "last"),
                 "--lr", "1e-12"]) == 0
    tuned = load_model(str(tmp_path / "tuned" / "last"))
    assert_same_weights(tuned.network, start.network)  # a vanishing learning rate keeps the initial weights
    lineage = tuned.metadata["training"]["initialised_from"]
    assert lineage["sha256"] == start.metadata["sha256"] and lineage["steps"] == 2
    # pix2pix's generator is the CNN's network: a GAN may start from a trained CNN, with a new discriminator
    assert main([*common, "--model", "gan", "--out", str(tmp_path / "gan"), "--init", str(tmp_path / "start" / "last"),
                 "--lr", "1e-12"]) == 0
    gan = load_model(str(tmp_path / "gan" / "last"))
    assert gan.metadata["method"] == "gan" and gan.metadata["training"]["initialised_from"]["sha256"] == lineage["sha256"]
    assert_same_weights(gan.network, start.network)
    capsys.readouterr()
    assert main([*common, "--model", "ddpm", "--out", str(tmp_path / "wrong"), "--init",
                 str(tmp_path / "start" / "last")]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "--init" in error[0] and "'cnn'" in error[0]
    assert main([*common, "--model", "cnn", "--out", str(tmp_path / "bad"), "--mri-gamma", "-1"]) == 2
    assert "--mri-gamma must be between 0 and 2" in capsys.readouterr().err
    # the MRI scale travels with the weights: fine-tuning or resuming on another scale is refused
    assert main([*common, "--model", "cnn", "--out", str(tmp_path / "rescaled"), "--init",
                 str(tmp_path / "start" / "last"), "--mri-scale", "p99.5"]) == 2
    assert "another MRI scale" in capsys.readouterr().err
    assert main([*common, "--model", "cnn", "--out", str(tmp_path / "start"), "--epochs", "2", "--resume",
                 "--mri-scale", "p99.5"]) == 2
    assert "another MRI scale" in capsys.readouterr().err
    assert main([*common, "--model", "cnn", "--out", str(tmp_path / "start"), "--epochs", "2", "--resume"]) == 0
    assert load_model(str(tmp_path / "start" / "last")).intensity == start.intensity


def test_contrast_augmentation_keeps_the_range_and_order():
    from MRItoCTLib.research.dataset import vary_contrast

    unit = np.linspace(-1, 1, 11, dtype=np.float32)
    for gamma in (0.75, 1.0, 1.35):
        varied = vary_contrast(unit, gamma)
        assert varied[0] == pytest.approx(-1) and varied[-1] == pytest.approx(1) and np.all(np.diff(varied) > 0)
    assert vary_contrast(unit, 0.75)[5] > unit[5] > vary_contrast(unit, 1.35)[5]
    np.testing.assert_allclose(vary_contrast(unit, 1.0), unit, atol=1e-6)


def test_regression_baseline_answers_alike_on_a_crop_and_the_whole_slice():
    """Batch norm (running statistics): a pixel's prediction does not depend on how much air is around it."""
    import torch

    from MRItoCTLib.baselines import RegressionConfig, RegressionNet

    torch.manual_seed(0)
    network = RegressionNet(RegressionConfig(channels=(8, 16), strides=(2,)))
    network.train()
    for _ in range(3):  # fill the running statistics
        network(torch.randn(4, 3, 32, 32))
    network.eval()
    whole = torch.full((1, 3, 96, 96), -1.0)
    whole[..., 32:64, 32:64] = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        inner_whole = network(whole)[..., 40:56, 40:56]
        inner_crop = network(whole[..., 24:72, 24:72])[..., 16:32, 16:32]
    torch.testing.assert_close(inner_whole, inner_crop, atol=1e-4, rtol=0)


def test_regression_baseline_predicts_a_difference_from_water_and_reads_older_configs():
    import torch

    from MRItoCTLib.baselines import RegressionConfig, RegressionNet
    from MRItoCTLib.intensity import DEFAULT_INTENSITY

    network = RegressionNet(RegressionConfig(channels=(8, 16), strides=(2,))).eval()
    for parameter in network.parameters():
        parameter.data.zero_()
    with torch.no_grad():
        assert float(DEFAULT_INTENSITY.unit_to_hu(network(torch.randn(1, 3, 16, 16))).abs().max()) < 1e-3  # 0 HU before training
    older = RegressionConfig.from_dict({"channels": [8, 16], "strides": [2]})  # saved before norm / centre_hu
    assert older.norm == "instance" and older.centre_hu is None and older.upsample == "transposed"


def test_resize_convolution_paints_no_checkerboard_where_transposed_convolution_does():
    """A constant MRI through a freshly initialised network: MONAI's strided transposed convolutions answer with a
    periodic pattern (their kernels overlap unevenly), interpolation + convolution with a constant."""
    import torch

    from MRItoCTLib.baselines import RegressionConfig, RegressionNet

    spread = {}
    for upsample in ("transposed", "resize"):
        torch.manual_seed(0)
        network = RegressionNet(RegressionConfig(upsample=upsample)).eval()
        with torch.no_grad():
            spread[upsample] = float(network(torch.ones(1, 3, 96, 96))[0, 0, 16:-16, 16:-16].std())
    assert spread["resize"] < 0.01 * spread["transposed"]
    with pytest.raises(ValueError, match="unknown upsampling"):
        RegressionNet(RegressionConfig(upsample="nearest"))


def test_evaluate_and_demo_commands(tmp_path, small_dataset, tiny_model, capsys):
    cnn = tmp_path / "cnn"
    assert main(["train", "--data", str(small_dataset), "--model", "cnn", "--out", str(cnn), "--epochs", "1",
                 "--steps-per-epoch", "2", "--batch-size", "2", "--crop", "32", "--channels", "8", "16", "--quiet"]) == 0
    output = tmp_path / "evaluation"
    assert main(["evaluate", "--data", str(small_dataset), "--output", str(output), "--models", str(tiny_model),
                 str(cnn / "best"), "--samplers", "ddim", "dpmpp", "--steps", "ddim=2", "dpmpp=2", "--mc", "2",
                 "--max-slices", "2", "--quiet"]) == 0
    with open(output / "metrics.csv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["method"] for r in rows] == ["DDIM", "DDIM-M", "DPM-Solver++", "DPM-Solver++-M", "CNN"]
    assert all(float(r["mae"]) >= 0 and 0 < float(r["ssim"]) <= 1 for r in rows)
    assert rows[1]["spearman"] != "nan" and rows[0]["spearman"] == "nan"
    assert (output / "example_slice.png").stat().st_size > 0 and (output / "uncertainty_vs_error.png").exists()
    assert (output / "example_slice_error.png").stat().st_size > 0
    assert "| DDIM-M |" in (output / "metrics.md").read_text(encoding="utf-8")
    demo = tmp_path / "demo"
    assert main(["demo", "--output", str(demo), "--model", str(tiny_model), "--steps", "2", "--mc", "2", "--quiet"]) == 0
    for name in ["synthetic_ct.nii.gz", "uncertainty_std.nii.gz", "montage.png"]:
        assert (demo / name).stat().st_size > 0
    assert main(["evaluate", "--data", str(small_dataset), "--output", str(output), "--models", str(tiny_model),
                 "--steps", "ddim=0", "--quiet"]) == 2


def test_metrics_on_known_cases():
    rng = np.random.default_rng(0)
    reference = rng.normal(0, 300, (3, 32, 32))
    mask = np.ones_like(reference, bool)
    perfect = image_metrics(reference, reference, mask)
    assert perfect["mae"] == 0 and perfect["ssim"] == pytest.approx(1.0)
    shifted = image_metrics(np.clip(reference, -900, 2900) + 50, np.clip(reference, -900, 2900), mask)
    assert shifted["mae"] == pytest.approx(50) and shifted["me"] == pytest.approx(50)
    assert shifted["psnr"] == pytest.approx(10 * np.log10(4024**2 / 2500))
    error = np.abs(rng.normal(size=5000))
    assert sparsification(error, error)["ause"] == pytest.approx(0.0, abs=1e-9)
    assert sparsification(-error, error)["ause"] > 0.5
    assert spearman(error, 2 * error + 1) == pytest.approx(1.0)
    informative = uncertainty_metrics(np.abs(reference - 10), reference + 0.5 * np.abs(reference - 10), reference, mask)
    assert informative["spearman"] > 0.9


def test_training_under_torchrun_with_two_processes(tmp_path, small_dataset):
    """DistributedDataParallel (gloo on CPU): two workers, one log, one set of model folders."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    torchrun = Path(sys.executable).parent / "torchrun"
    out = tmp_path / "ddp"
    run = subprocess.run([str(torchrun), "--nproc_per_node", "2", "-m", "MRItoCTLib.cli", "train", "--data",
                          str(small_dataset), "--model", "cnn", "--out", str(out), "--epochs", "2", "--steps-per-epoch",
                          "2", "--batch-size", "2", "--crop", "32", "--channels", "8", "16", "--quiet"],
                         capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    with open(out / "train_log.csv", encoding="utf-8") as handle:
        assert [row["epoch"] for row in csv.DictReader(handle)] == ["1", "2"]
    assert (out / "best" / "model.pt").is_file()


def test_the_recipe_covers_dark_muscle_and_bright_fluid():
    """Real pelvic T2 images can show muscle nearly as dark as cortical bone and urine brighter than fat: the
    randomised spin-echo parameters cover both, so neither is ever read as air or bone by shape-blind rules."""
    from MRItoCTLib.research.ct_pairs import case_signals

    rng = np.random.default_rng(0)
    signals = [case_signals(rng) for _ in range(500)]
    muscle = np.array([s["muscle"] / s["fat"] for s in signals])
    fluid = np.array([s["fluid"] / s["fat"] for s in signals])
    assert muscle.min() < 0.03 and muscle.max() > 0.3  # from near signal void to dark grey
    assert np.mean(fluid > 1.0) > 0.5 and all(s["cortical_bone"] < 0.01 * s["fat"] for s in signals)


def test_ct_derived_pairs_are_augmented_and_keep_geometry(ct_sample):
    """Two copies of one CT differ in shape (augmentation) and contrast, and each MRI lies on its CT's grid."""
    ct = sitk.ReadImage(str(ct_sample))[10:110, 5:95, 30:60]
    first, second = (pair_from_ct(ct, np.random.default_rng(seed)) for seed in (1, 2))
    for mri, hu, mask in (first, second):
        assert mri.GetSize() == hu.GetSize() and mri.GetOrigin() == hu.GetOrigin()
        assert mri.GetDirection() == ct.GetDirection()
    masks = [sitk.GetArrayFromImage(m) for _, _, m in (first, second)]
    assert masks[0].shape != masks[1].shape or (masks[0] != masks[1]).mean() > 0.01
    unchanged, hu, _ = pair_from_ct(ct, np.random.default_rng(1), augment=False)
    centre = hu.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2 for n in hu.GetSize()])
    original = ct.GetPixel(ct.TransformPhysicalPointToIndex(centre))
    assert abs(hu.GetPixel(hu.TransformPhysicalPointToIndex(centre)) - original) < 150  # same anatomy, same place


def test_the_median_scale_moves_less_with_a_full_bladder():
    """The bright signal's median hardly moves when a bright organ fills, where its 99.5th percentile follows it."""
    from MRItoCTLib.intensity import DEFAULT_INTENSITY, MEDIAN_INTENSITY

    rng = np.random.default_rng(0)
    body = np.concatenate([rng.normal(400, 40, 60_000), rng.normal(150, 20, 40_000)])  # fat, soft tissue
    with_bladder = np.concatenate([body, rng.normal(900, 50, 8_000)])  # urine, brighter than fat
    for_mapping = {}
    for name, mapping in (("p99.5", DEFAULT_INTENSITY), ("median", MEDIAN_INTENSITY)):
        before = mapping.normalize_mri(body, np.ones(body.shape, bool))[:100_000]
        after = mapping.normalize_mri(with_bladder, np.ones(with_bladder.shape, bool))[:100_000]
        for_mapping[name] = float(np.median(np.abs(after - before)))
    assert for_mapping["median"] < 0.25 * for_mapping["p99.5"], for_mapping


def test_bone_weight_moves_the_l1_optimum_from_soft_tissue_to_bone():
    """Where one in five look-alike voxels is bone, plain L1 settles on soft tissue (the median); weighting bone
    five times makes bone the weighted median."""
    import torch

    from MRItoCTLib.intensity import MEDIAN_INTENSITY
    from MRItoCTLib.model_types import LossInputs, l1_loss
    from MRItoCTLib.research.metrics import BONE_HU

    ct = torch.tensor(MEDIAN_INTENSITY.hu_to_unit(np.array([40.0] * 8 + [700.0] * 2)), dtype=torch.float32)
    bone_unit = float(MEDIAN_INTENSITY.hu_to_unit(BONE_HU))
    candidates = torch.linspace(-1, 1, 4025)  # every HU from -1024 to 3000

    def best_constant(weight: float) -> float:
        losses = [l1_loss(LossInputs(None, lambda _: c.expand_as(ct), ct, ct, bone_weight=weight,
                                     bone_unit=bone_unit))[0] for c in candidates]
        return float(MEDIAN_INTENSITY.unit_to_hu(candidates[int(torch.stack(losses).argmin())]))

    assert best_constant(1.0) == pytest.approx(40.0, abs=1.5)
    assert best_constant(5.0) == pytest.approx(700.0, abs=1.5)


def test_bone_weight_is_recorded_and_checked(tmp_path, small_dataset, capsys):
    common = ["train", "--data", str(small_dataset), "--out", str(tmp_path / "out"), "--quiet"]
    assert main([*common, "--model", "cnn", "--bone-weight", "5", "--steps-per-epoch", "1", "--epochs", "1",
                 "--batch-size", "2", "--crop", "32", "--channels", "8", "16"]) == 0
    card = (tmp_path / "out" / "last" / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert "bone voxels weighted 5 times in the L1 loss" in card
    assert main([*common, "--model", "ddpm", "--bone-weight", "3"]) == 2
    assert "--bone-weight applies to --model cnn or gan" in capsys.readouterr().err
    assert main([*common, "--model", "cnn", "--bone-weight", "0.5"]) == 2
    assert "--bone-weight must be between 1 and 100" in capsys.readouterr().err


def test_bone_gets_a_black_cortical_shell_of_the_drawn_thickness():
    """A bone disc in the CT (as a 3 mm CT shows a femoral head, its trabecular inside dipping below the bone
    threshold in places): its outer 1-2 mm render as cortical bone, its whole inside as marrow, as a real T2 shows
    it."""
    from MRItoCTLib.research.ct_pairs import BONE_EDGE_HU, RECIPE, cortical_shell

    spacing = (0.5, 0.5, 1.0)
    y, x = np.mgrid[:120, :120] * spacing[0]
    radius = np.hypot(y - 30, x - 30)
    hu = np.repeat(np.where(radius < 20, 300.0, 40.0)[None], 9, axis=0)
    gaps = (np.random.default_rng(1).random(hu.shape) < 0.15) & (radius < 17)
    hu[gaps] = 150.0  # below BONE_EDGE_HU: marrow between trabeculae, not bone surface
    shell = cortical_shell(hu, spacing, np.random.default_rng(0))
    middle = shell[4]
    assert not middle[radius >= 20].any()  # soft tissue stays soft tissue
    thickness = radius[middle].max() - radius[middle].min() + spacing[0]
    low, high = RECIPE["cortex_mm"]
    assert low - spacing[0] <= thickness <= high + spacing[0]
    assert not middle[radius < 20 - high - spacing[0]].any()  # the marrow inside stays marrow
    assert BONE_EDGE_HU < 300


def test_dark_lines_follow_fat_boundaries_and_fascia_but_never_bone():
    """Part of the fat / soft-tissue boundary and thin lines inside soft tissue are drawn dark; bone, and fat away
    from a boundary, are left alone."""
    from MRItoCTLib.research.ct_pairs import dark_lines

    hu = np.full((4, 80, 80), 40.0)
    hu[:, :, :20] = -100.0  # fat on the left
    hu[:, 50:70, 50:70] = 400.0  # bone
    lines = dark_lines(hu, (1.0, 1.0, 3.0), np.random.default_rng(0))
    boundary = lines[:, :, 19:21]
    assert 0.1 < boundary.mean() < 0.9  # part of the boundary
    assert not lines[:, :, :17].any() and not lines[:, 50:70, 50:70].any()
    assert 0.005 < lines[:, :45, 25:].mean() < 0.3  # thin fascia inside the soft tissue


def test_iodine_is_found_in_enhanced_blood_and_organs_not_in_bone_or_noisy_muscle(contrast_ct):
    from MRItoCTLib.research.ct_pairs import iodine_enhanced

    ct = contrast_ct(aorta_hu=200.0)
    hu = sitk.GetArrayFromImage(ct)
    enhanced = iodine_enhanced(hu, ct.GetSpacing())
    _, y, x = np.mgrid[0:8, 0:96, 0:96]
    assert enhanced[:, 45, 60].all() and enhanced[:, 35, 30].all(), "aorta and liver"
    assert not enhanced[(y - 65) ** 2 + (x - 48) ** 2 < 11 ** 2].any(), "the vertebra is bone, marrow included"
    muscle = (np.abs(hu - 55.0) < 60.0) & ((y - 80) ** 2 + (x - 20) ** 2 < 10 ** 2)
    assert muscle.sum() > 500 and enhanced[muscle].mean() < 0.01, "muscle's noise above 80 HU is not iodine"


def test_hidden_iodine_renders_enhanced_tissue_as_unenhanced_and_keeps_the_ct(contrast_ct):
    """With ``hide_iodine`` the MRI of an enhanced aorta and liver is close to the MRI of the same body with them
    at IODINE_HU (as a T2 cannot tell them apart), while the CT keeps 200 HU."""
    from MRItoCTLib.research.ct_pairs import IODINE_HU

    enhanced, plain = contrast_ct(aorta_hu=200.0), contrast_ct(aorta_hu=IODINE_HU, liver_hu=IODINE_HU)
    hidden_mri, hidden_ct, _ = pair_from_ct(enhanced, np.random.default_rng(3), augment=False, hide_iodine=True)
    plain_mri, _, _ = pair_from_ct(plain, np.random.default_rng(3), augment=False)
    shown_mri, _, _ = pair_from_ct(enhanced, np.random.default_rng(3), augment=False)
    hidden, shown, unenhanced = (sitk.GetArrayFromImage(image) for image in (hidden_mri, shown_mri, plain_mri))
    # the same but for partial volume at the enhanced edges (a 140 HU edge voxel is hidden at 80 HU, not at 67)
    assert np.abs(hidden - unenhanced).mean() < 0.1 * np.abs(shown - unenhanced).mean()
    ct = sitk.GetArrayFromImage(hidden_ct)
    assert ct.max() >= 200 and np.median(ct[ct > 150]) > 150, "the CT keeps the enhanced HU"
