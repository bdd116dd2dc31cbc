"""The benchmark scripts run from the README commands (with small settings) and print their tables."""

from __future__ import annotations

import csv
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

ROOT = Path(__file__).resolve().parents[1]


def _run(script: str, *arguments: str, cwd: Path) -> str:
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *arguments], cwd=cwd, capture_output=True,
                         encoding="utf-8", errors="replace", timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    return run.stdout


def test_mritoct_speed_benchmark(tmp_path, tiny_model):
    printed = _run("mritoct_speed.py", "--device", "cpu", "--model", str(tiny_model), "--runs", "ddim", "dpmpp", "ddpm=1000",
                   "--mc", "1", "10", "--measure-steps", "2", "--measure-slices", "1", "--csv", "speed.csv",
                   cwd=tmp_path)
    assert "| sampler | steps | NFE | MC |" in printed
    assert re.search(r"Speed-up over DDPM-1000 \(same run\): ddim-50 \d+x, dpmpp-20 \d+x", printed)
    with open(tmp_path / "speed.csv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["sampler"], r["nfe"], r["mc"]) for r in rows] == [("ddim", "50", "1"), ("ddim", "50", "10"),
                                                                 ("dpmpp", "20", "1"), ("dpmpp", "20", "10"),
                                                                 ("ddpm", "1000", "1"), ("ddpm", "1000", "10")]
    for row in rows:
        assert float(row["seconds_per_volume"]) > 0 and float(row["peak_host_mib"]) > 0
        assert np.isclose(float(row["seconds_per_volume"]), float(row["seconds_per_slice"]) * 128 * int(row["mc"]))


def test_mritoct_cost_benchmark_prints_the_cost_and_leaves_metadata_alone(tmp_path, tiny_model):
    before = (tiny_model / "metadata.json").read_text(encoding="utf-8")
    printed = _run("mritoct_cost.py", "--slices", "1", "--models", str(tiny_model), cwd=tmp_path)
    row = re.search(rf"\| {re.escape(str(tiny_model))} \| (\d+) \| (\d+) \| 1 \| ([\d.]+) \| ([\d.]+) \|", printed)
    assert row, printed
    nfe, mc, seconds, per_megapixel = int(row[1]), int(row[2]), float(row[3]), float(row[4])
    assert nfe == 6 and mc == 4 and per_megapixel > 0
    megapixels = math.ceil(256 * 2.0 / 3.0) ** 2 / 1e6  # a 256 x 256 slab at 2 mm, on the tiny model's 3 mm grid
    assert abs(per_megapixel * nfe * mc * megapixels - seconds) <= 0.05 + 0.01 * seconds  # printed to 0.1 s
    assert (tiny_model / "metadata.json").read_text(encoding="utf-8") == before, "only --write changes metadata"


def test_whole_volume_benchmark_times_a_complete_run_of_the_pelvis_series(tmp_path, tiny_model):
    printed = _run("mritoct_whole_volume.py", "--models", str(tiny_model), "--slices", "2", cwd=tmp_path)
    assert "275 x 275 x 2 voxels at 1.5 x 1.5 x 3.0 mm, preset standard" in printed
    row = next(line for line in printed.splitlines() if str(tiny_model) in line).split("|")
    assert row[2].strip() == "DDPM-6, MC 4, flips, shifts" and row[3].strip() == "cpu"
    assert float(row[4]) > 0 and row[6].strip() == "yes"


def test_mritoct_quality_benchmark(tmp_path, tiny_model, ct_sample):
    from CTSynthesisCore.volume_io import write_volume
    from MRItoCTLib.research.ct_pairs import pair_from_ct
    from MRItoCTLib.research.dataset import split_of

    ct = sitk.ReadImage(str(ct_sample))
    names = [n for n in (f"case_{i:04d}" for i in range(40)) if split_of(n) == "test"][:2]
    for index, name in enumerate(names):
        mri, hu, mask = pair_from_ct(ct[10:110, 5:95, 30 + 10 * index: 40 + 10 * index], np.random.default_rng(index))
        (tmp_path / "data" / name).mkdir(parents=True)
        for image, file in ((mri, "mr"), (hu, "ct"), (mask, "mask")):
            write_volume(image, tmp_path / "data" / name / f"{file}.nii.gz")
    printed = _run("mritoct_quality_nfe.py", "--data", "data", "--model", str(tiny_model), "--cases", "2",
                   "--reference-steps", "4", "--sweep", "ddpm=2", "dpmpp=2,3", "ode=heun:2", "--device", "cpu",
                   "--csv", "quality.csv", cwd=tmp_path)
    assert f"held-out cases {', '.join(names)}" in printed
    assert "Fewest NFE within 0.5 dB PSNR of DDPM-4" in printed
    with open(tmp_path / "quality.csv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["sampler"], r["setting"], r["nfe"]) for r in rows] == [
        ("ddpm", "4", "4"), ("ddpm", "2", "2"), ("dpmpp", "2", "2"), ("dpmpp", "3", "3"), ("ode", "heun:2", "3")]
    assert all(np.isfinite(float(r["psnr"])) for r in rows)
    assert float(rows[0]["mae_vs_reference"]) == 0.0  # the reference against itself
    assert all(float(r["mae_vs_reference"]) > 0 for r in rows[1:])


def test_mritoct_quality_benchmark_samples_a_residual_model_on_pairs_from_a_held_out_ct(tmp_path, ct_sample):
    """``--ct``: pairs rendered from a real CT; a residual model is sampled as its kind samples (mean + residual)."""
    import torch

    from MRItoCTLib.baselines import RegressionConfig
    from MRItoCTLib.model import save_model
    from MRItoCTLib.residual import ResidualConfig, ResidualDiffusion

    torch.manual_seed(0)
    config = ResidualConfig(channels=(8, 16), attention_levels=(False, False), norm_num_groups=4, num_head_channels=8,
                            context_slices=1, mean_network=RegressionConfig(channels=(8, 16), strides=(2,)).to_dict())
    save_model(tmp_path / "residual", ResidualDiffusion(config).eval(), {"name": "tiny-residual", "spacing_mm": [3.0, 3.0]})
    sitk.WriteImage(sitk.ReadImage(str(ct_sample))[10:110, 5:95, 30:45], str(tmp_path / "held_out_ct.nii.gz"))
    printed = _run("mritoct_quality_nfe.py", "--ct", "held_out_ct.nii.gz", "--model", "residual", "--cases", "2",
                   "--reference-steps", "3", "--sweep", "ddpm=2", "ddim=2", "--device", "cpu", "--csv", "quality.csv",
                   cwd=tmp_path)
    assert "held-out cases held_out_ct pair 0, held_out_ct pair 1" in printed
    with open(tmp_path / "quality.csv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["sampler"], r["setting"], r["nfe"]) for r in rows] == [("ddpm", "3", "3"), ("ddpm", "2", "2"),
                                                                        ("ddim", "2", "2")]
    assert all(np.isfinite(float(r["psnr"])) for r in rows) and float(rows[2]["mae_vs_reference"]) > 0


def test_sliceinterp_speed_benchmark(tmp_path):
    printed = _run("sliceinterp_speed.py", "--device", "cpu", "--size", "64", "64", "8", "--csv", "speed.csv",
                   cwd=tmp_path)
    assert "SliceInterp speed, 64x64x8 input" in printed
    with open(tmp_path / "speed.csv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["method"], r["factor"], r["output_slices"]) for r in rows] == [
        ("linear", "2", "15"), ("cubic", "2", "15"), ("crossview", "2", "15"),
        ("linear", "4", "29"), ("cubic", "4", "29"), ("crossview", "4", "29")]


def test_real_t2_check_prints_ct_likeness_and_measures_it_right(tmp_path, tiny_model):
    printed = _run("mritoct_real_t2.py", "--models", str(tiny_model), "--sampler", "ddim", "--steps", "2", "--mc", "1",
                   "--device", "cpu", "--csv", "real.csv", cwd=tmp_path)
    assert "| model | median HU |" in printed and "(ddim, MC 1)" in printed
    with open(tmp_path / "real.csv", encoding="utf-8") as handle:
        row = next(csv.DictReader(handle))
    assert -1000 <= float(row["p5_hu"]) <= float(row["median_hu"]) <= float(row["p95_hu"]) <= 3000

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from mritoct_real_t2 import ct_likeness

    t2 = np.tile(np.repeat(np.array([0.0, 100.0, 200.0, 300.0, 400.0], np.float32), 4), (2, 20, 1))
    hu = np.where(t2 >= 300, -100.0, 40.0).astype(np.float32)
    hu[t2 == 0] = -1024.0  # outside the body
    hu[0, 0, 4] = 700.0  # one bone voxel
    stats = ct_likeness(sitk.GetImageFromArray(t2), sitk.GetImageFromArray(hu))
    assert stats["bright_t2_median_hu"] == -100 and stats["dark_t2_median_hu"] == 40
    assert stats["bone_like_pct"] == 100 / 640 and stats["fat_like_pct"] == 50.0


def test_slice_consistency_benchmark_prints_its_table(tmp_path, tiny_model):
    printed = _run("mritoct_slice_consistency.py", "--model", str(tiny_model), "--steps", "2", "--mc", "2",
                   "--slices", "6", "--csv", str(tmp_path / "steps.csv"), cwd=tmp_path)
    assert "| real CT (abdomen-pelvis sample) | the CT itself |" in printed
    assert printed.count("| sCT, shared slice noise") == 4 and (tmp_path / "steps.csv").is_file()


def test_roi_benchmark_draws_its_regions_and_prints_a_median_per_region(tmp_path, tiny_model):
    model = Path(shutil.copytree(tiny_model, tmp_path / "model"))
    printed = _run("mritoct_roi.py", "--models", str(model), "--steps", "2", "--mc", "1", "--figure",
                   str(tmp_path / "rois.png"), "--csv", str(tmp_path / "roi.csv"), "--record", cwd=tmp_path)
    assert "| 4 | bladder urine | 0 to 20 |" in printed and "regions in range" in printed
    uncertainty_table = printed.split("Median uncertainty per region")[1]
    assert "| 4 | bladder urine | 0 |" in uncertainty_table  # one sample: no spread
    with open(tmp_path / "roi.csv", newline="", encoding="utf-8") as handle:
        assert float(next(csv.DictReader(handle))["bladder urine: uncertainty"]) == 0.0
    assert (tmp_path / "rois.png").stat().st_size > 10_000
    card = (model / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert "### Regions of interest on the real ProstateX-0000 T2 (median synthetic-CT HU, DDPM-2, MC 1)" in card
    assert "| bladder urine | 0 to 20 |" in card
    assert "regions in range" in card and "--record" in card


def test_roi_benchmark_reads_the_t2_moved_on_the_model_grid(tmp_path, tiny_model):
    printed = _run("mritoct_roi.py", "--models", str(tiny_model), "--steps", "2", "--mc", "2", "--grid-shifts", "0", "2",
                   "--figure", str(tmp_path / "rois.png"), "--csv", str(tmp_path / "roi.csv"), cwd=tmp_path)
    header = next(line for line in printed.splitlines() if line.startswith("| # | region"))
    assert "moved 0 px" in header and "moved 2 px" in header
    assert len(table_cells(printed.split("Median uncertainty per region")[1])) == 1 + 8
    with open(tmp_path / "roi.csv", newline="", encoding="utf-8") as handle:
        spreads = [float(value) for row in csv.DictReader(handle) for key, value in row.items()
                   if key.endswith(": uncertainty")]
    assert len(spreads) == 2 * 8 and min(spreads) > 0


def test_roi_benchmark_refuses_to_record_medians_of_a_moved_image(tmp_path, tiny_model):
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "mritoct_roi.py"), "--models", str(tiny_model),
                          "--grid-shifts", "2", "--record"], cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 2 and "leave out --grid-shifts" in run.stderr
    assert not (tmp_path / "mritoct_rois.png").exists()


def test_moving_on_the_model_grid_mirrors_the_image_before_it_and_keeps_its_voxels_in_place():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from mritoct_roi import moved_on_model_grid

    image = sitk.GetImageFromArray(np.arange(2 * 6 * 8, dtype=np.float32).reshape(2, 6, 8) + 1)
    image.SetSpacing((0.5, 0.5, 3.0))
    image.SetOrigin((10.0, -4.0, 7.0))
    moved = moved_on_model_grid(image, 3, (2.0, 2.0))  # 3 model pixels of 2 mm = 12 pixels of 0.5 mm
    assert moved.GetSize() == (20, 18, 2) and moved.GetOrigin() == (4.0, -10.0, 7.0)
    array = sitk.GetArrayFromImage(moved)
    assert np.array_equal(array[:, 12:, 12:], sitk.GetArrayFromImage(image))
    assert np.array_equal(array[:, 12:, 11], array[:, 12:, 12]), "mirrored about the image's first column"
    with pytest.raises(SystemExit, match="not a whole number"):
        moved_on_model_grid(image, 1, (0.75, 0.75))


def test_montage_of_the_out_of_domain_sample_prints_its_figures(tmp_path, tiny_model):
    printed = _run("mritoct_montage.py", "--input", "mr_abdomen", "--model", str(tiny_model), "--steps", "2", "--mc",
                   "2", "--output", str(tmp_path / "montage.png"), cwd=tmp_path)
    assert "MR upper abdomen" in printed and "| Uncertainty |" in printed and "| Voxels above 300 HU" in printed
    assert (tmp_path / "montage.png").stat().st_size > 10_000


def test_roi_cells_mark_values_outside_the_range_and_never_print_an_edge_value_as_outside():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from mritoct_roi import Region, median_cell

    muscle = Region("muscle", 0, 0, 0, 1, 35, 55)
    assert [median_cell(muscle, value) for value in (42.3, 34.6, 20.2, 55.4, 61.0)] == [
        "42", "34.6 (low)", "20 (low)", "55.4 (high)", "61 (high)"]


def test_roi_discs_lie_in_the_t2_and_on_distinct_voxels():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from mritoct_roi import REGIONS, disc

    shape = (19, 384, 384)  # ProstateX-0000 T2
    masks = [disc(shape, region) for region in REGIONS]
    assert all(mask.sum() >= 9 for mask in masks)
    assert not np.any(np.sum(masks, axis=0) > 1), "regions must not overlap"


def test_heldout_benchmark_frames_a_model_by_water_and_the_case_own_lookup_table(tmp_path, tiny_model, ct_sample):
    printed = _run("mritoct_heldout.py", "--ct", str(ct_sample), "--models", str(tiny_model), "--cases", "1",
                   "--slices", "4", "--steps", "2", "--mc", "2", "--csv", str(tmp_path / "heldout.csv"), cwd=tmp_path)
    rows = {line.split("|")[1].strip(): line for line in printed.splitlines() if line.startswith("| ") and "HU" not in line}
    assert {"water in body", "lookup table fitted on this case"} <= set(rows)
    assert any(method.startswith("tiny-test (") for method in rows), "a model folder is labelled with its folder"
    with open(tmp_path / "heldout.csv", encoding="utf-8") as handle:
        table = {row["method"]: float(row["mae"]) for row in csv.DictReader(handle)}
    assert table["lookup table fitted on this case"] < table["water in body"], "the case's own lookup beats water"


def test_heldout_benchmark_records_the_table_and_whether_the_ct_was_a_training_ct(tmp_path, tiny_model, ct_sample):
    model = Path(shutil.copytree(tiny_model, tmp_path / "model"))
    _run("mritoct_heldout.py", "--ct", str(ct_sample), "--models", str(model), "--cases", "1", "--slices", "2",
         "--steps", "2", "--mc", "2", "--csv", str(tmp_path / "heldout.csv"), "--record", cwd=tmp_path)
    card = (model / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert "### MRI/CT pairs rendered from the real CT" in card and "| water in body |" in card
    assert "inside the body, iodine-enhanced soft tissue left out, DDPM-2, MC 2, flips, shifts)" in card
    assert "among this model's training CTs" in card


def test_held_out_pairs_of_a_contrast_ct_leave_its_iodine_out_of_the_scored_region(contrast_ct):
    """Enhanced blood and liver are not scored; the vertebra and the rest of the body are (``--iodine-visible``:
    the whole body, as before)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from mritoct_heldout import held_out_pair, scored_region

    truth, body = held_out_pair(contrast_ct(), 0, 0)[1:]
    hu, body = sitk.GetArrayFromImage(truth), sitk.GetArrayFromImage(body).astype(bool)
    scored = scored_region(hu, truth.GetSpacing(), body)
    assert np.array_equal(scored_region(hu, truth.GetSpacing(), body, iodine_visible=True), body)
    assert not np.any(scored & ~body) and scored.sum() > 0.7 * body.sum()

    def at(x_mm: float, y_mm: float) -> tuple[int, int, int]:
        column, row, _ = truth.TransformPhysicalPointToIndex((x_mm, y_mm, truth.GetOrigin()[2]))
        return 0, row, column

    assert not scored[at(60, 45)] and not scored[at(30, 35)], "the enhanced aorta and liver are left out"
    assert scored[at(48, 65)] and scored[at(48, 55)], "the vertebra's marrow and cortex are scored"
    assert hu[at(60, 45)] > 150 and hu[at(48, 65)] > 150


def test_sliceinterp_adaptation_curve_benchmark(tmp_path):
    from CTSynthesisCore.sample_data import sample_path

    thin = tmp_path / "thin.nii.gz"
    sitk.WriteImage(sitk.ReadImage(str(sample_path("ct_chest_thin_1p5mm")))[40:80, 40:80, 60:80], str(thin))
    printed = _run("sliceinterp_adapt_curve.py", str(thin), "--minutes", "0", "0.02", "--csv", "curve.csv",
                   cwd=tmp_path)
    assert "| method | adaptation minutes | PSNR dB | gain over no adaptation dB |" in printed
    with open(tmp_path / "curve.csv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["method"], float(r["adapt_minutes"])) for r in rows] == [("linear", 0), ("crossview", 0),
                                                                        ("crossview", 0.02)]
    assert all(10 < float(r["psnr"]) < 80 and 0 < float(r["ssim"]) <= 1 for r in rows)
    assert rows[1]["psnr"] != rows[0]["psnr"], "the network is not linear interpolation"
    printed = _run("sliceinterp_adapt_curve.py", str(thin), "--minutes", "0", "0.02", "--fresh", "4", "8",
                   "--csv", "fresh.csv", cwd=tmp_path)
    assert "an untrained network of channels [4, 8]" in printed
    with open(tmp_path / "fresh.csv", encoding="utf-8") as handle:
        fresh = list(csv.DictReader(handle))
    assert abs(float(fresh[1]["psnr"]) - float(fresh[0]["psnr"])) < 0.01, "an untrained network is linear"
    assert fresh[2]["psnr"] != fresh[0]["psnr"], "adaptation trains it"
    printed = _run("sliceinterp_adapt_curve.py", str(thin), "--minutes", "0", "--planar-context", "1",
                   "--csv", "wide.csv", cwd=tmp_path)
    assert "1 parallel plane(s) on each side" in printed
    with open(tmp_path / "wide.csv", encoding="utf-8") as handle:
        wide = list(csv.DictReader(handle))
    assert abs(float(wide[1]["psnr"]) - float(rows[1]["psnr"])) < 0.01, "the widened model starts as the model"


def test_sliceinterp_ablation_benchmark(tmp_path):
    from CTSynthesisCore.sample_data import sample_path

    thin, train = tmp_path / "thin.nii.gz", tmp_path / "train.nii.gz"
    sitk.WriteImage(sitk.ReadImage(str(sample_path("ct_chest_thin_1p5mm")))[40:80, 40:80, 60:80], str(thin))
    sitk.WriteImage(sitk.ReadImage(str(sample_path("ct_abdomen_pelvis_3mm")))[30:94, 20:84, 40:70], str(train))
    printed = _run("sliceinterp_ablation.py", "--data", str(train), "--thin", str(thin), "--steps", "2",
                   "--factors", "2", "3", "--csv", "ablation.csv", cwd=tmp_path)
    assert "| recipe | steps | thin x2 | thin x3 |" in printed
    with open(tmp_path / "ablation.csv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["recipe"] for r in rows] == ["linear interpolation", "start model", "restoration + distillation",
                                           "+ in-plane (random scale, profile)", "in-plane only"]
    assert all(10 < float(r["thin x2"]) < 80 for r in rows)
    assert len({r["thin x3"] for r in rows[2:]}) == 3, "each recipe trains its own network"


def test_sliceinterp_fusion_benchmark(tmp_path):
    from CTSynthesisCore.sample_data import sample_path

    thin = tmp_path / "thin.nii.gz"
    sitk.WriteImage(sitk.ReadImage(str(sample_path("ct_chest_thin_1p5mm")))[40:80, 40:80, 60:80], str(thin))
    printed = _run("sliceinterp_fusion.py", str(thin), "--factors", "2", "--axial-weights", "0.5", "0",
                   "--adapt-minutes", "0.01", "--csv", "fusion.csv", cwd=tmp_path)
    assert "| method | thin x2 |" in printed
    with open(tmp_path / "fusion.csv", encoding="utf-8") as handle:
        scores = {row["method"]: float(row["thin x2"]) for row in csv.DictReader(handle)}
    assert list(scores) == ["linear", "cubic", "model, axial weight 0.50", "model, axial weight 0.00",
                            "adapted 0.01 min, axial weight 0.50", "adapted 0.01 min, axial weight 0.00"]
    assert all(10 < score < 80 for score in scores.values())
    assert scores["model, axial weight 0.50"] != scores["model, axial weight 0.00"], "the weights reach the output"


def table_cells(printed: str) -> list[list[str]]:
    """The cells of every row of the markdown tables in ``printed``."""
    return [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in printed.splitlines()
            if line.startswith("| ")]


def test_sliceinterp_fusion_bounds_order_the_fusions_as_they_must(tmp_path):
    """The blend fitted on the reference is at least as good as any view alone (it can weight one view 1), and the
    per-voxel oracle of all four at least as good as that of two."""
    from CTSynthesisCore.sample_data import sample_path

    thin = tmp_path / "thin.nii.gz"
    sitk.WriteImage(sitk.ReadImage(str(sample_path("ct_chest_thin_1p5mm")))[40:80, 40:80, 60:80], str(thin))
    printed = _run("sliceinterp_fusion_bounds.py", str(thin), "--factors", "2", cwd=tmp_path)
    scores = {cells[1]: float(cells[2]) for cells in table_cells(printed) if cells[0] == "x2"}
    assert len(scores) == 8, printed
    blend = scores["best global blend of all four (fitted on the reference)"]
    assert blend >= max(scores[f"{view} alone"] for view in ("linear", "axial", "coronal", "sagittal")) - 1e-2
    assert scores["per-voxel oracle, any of the four"] >= scores["per-voxel oracle, coronal or sagittal"]
    assert scores["per-voxel oracle, coronal or sagittal"] >= scores["coronal and sagittal mean (shipped)"] - 1e-2


def test_hip_check_benchmark_finds_hips_in_the_pelvis_ct_and_warns_without_bone(tmp_path):
    """The real abdomen-pelvis CT shows hips; a CT of the same grid with its bone replaced by soft tissue does not."""
    from CTSynthesisCore.sample_data import sample_path

    ct = sitk.ReadImage(str(sample_path("ct_abdomen_pelvis_3mm")))
    no_bone = tmp_path / "no_bone.nii.gz"
    sitk.WriteImage(sitk.Minimum(ct, 40), str(no_bone))
    printed = _run("mritoct_hip_check.py", "--ct", "ct_abdomen_pelvis_3mm", str(no_bone), cwd=tmp_path)
    rows = {cells[0]: cells for cells in table_cells(printed)}
    assert int(rows["ct_abdomen_pelvis_3mm"][3]) >= 5 and rows["ct_abdomen_pelvis_3mm"][4] == "no"
    assert int(rows[str(no_bone)][3]) == 0 and rows[str(no_bone)][4] == "yes"


def test_rim_reference_reads_a_head_shell_and_its_marrow_and_blurs_the_shell_through_the_model_grid(tmp_path):
    """A sphere of 250 HU marrow in a 1.5 mm shell of 1200 HU: the rim reads the shell at the CT's own pixels,
    lower after the round trip through 2 mm pixels, and the marrow reads 250 HU both ways."""
    z, y, x = np.mgrid[:5, :96, :96]
    distance = np.hypot(y - 48.3, x - 47.6)  # 1 mm pixels, off the pixel grid
    hu = np.where(distance < 18.5, 250.0, np.where(distance < 20.0, 1200.0, 40.0)).astype(np.float32)
    ct = sitk.GetImageFromArray(hu)
    ct.SetSpacing((1.0, 1.0, 3.0))
    sitk.WriteImage(ct, str(tmp_path / "head.nii.gz"))
    printed = _run("mritoct_rim_reference.py", "--ct", "head.nii.gz", "--heads", "2,48.3,47.6,19", cwd=tmp_path)
    own, through = table_cells(printed)[1:]
    assert own[1] == "CT's own pixels" and through[1] == "through 2 mm"
    own_median, through_median = (float(row[2].split(" / ")[1]) for row in (own, through))
    assert own_median > 1100 and 700 < through_median < own_median - 50
    assert own[3] == "100 %" and own[4] == through[4] == "250"
    assert (tmp_path / "mritoct_rim_reference.png").exists()


@pytest.mark.parametrize("arguments, message", [
    (["--heads", "1,2,3"], "is not SLICE,ROW,COLUMN,RADIUS_MM"),
    (["--heads", "2,5,47.6,19"], "the head's rim is not inside the CT"),
    ([], "the default heads are Pelvic-Ref-005's"),
])
def test_rim_reference_refuses_heads_it_cannot_read(tmp_path, arguments, message):
    ct = sitk.GetImageFromArray(np.zeros((5, 96, 96), np.float32))
    sitk.WriteImage(ct, str(tmp_path / "ct.nii.gz"))
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "mritoct_rim_reference.py"), "--ct", "ct.nii.gz",
                          *arguments], cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 2 and message in run.stderr and "Traceback" not in run.stderr
