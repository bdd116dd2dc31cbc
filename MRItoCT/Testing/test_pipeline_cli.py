"""Volume pipeline and ``mritoct`` CLI end to end with a tiny trained model."""

import shutil
import subprocess
import sys
import unittest
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from CTSynthesisCore.errors import UserInputError
from CTSynthesisCore.volume_io import read_volume, same_geometry
from MRItoCTLib.cli import main
from MRItoCTLib.model import load_model
from MRItoCTLib.pipeline import (framed, largest_shift, mirror_copies, pad_to_multiple, sample_mirrorings,
                                 sample_shifts, shifted_copies, synthesize, unshifted_copies)
from MRItoCTLib.settings import SynthesisSettings

FAST = SynthesisSettings(sampler="ddim", steps=3, mc=3, seed=0)


@pytest.fixture(scope="module")
def t2(t2_sample) -> sitk.Image:
    return sitk.ReadImage(str(t2_sample))


@pytest.fixture(scope="module")
def model(tiny_model):
    return load_model(str(tiny_model))


def test_output_is_on_the_input_grid_with_valid_values(t2, model):
    result = synthesize(t2, model, FAST, device="cpu")
    for image in (result.ct, result.uncertainty):
        assert same_geometry(image, t2, 1e-9)
    hu = sitk.GetArrayFromImage(result.ct)
    std = sitk.GetArrayFromImage(result.uncertainty)
    assert hu.min() >= -1024 and hu.max() <= 3000
    assert std.min() >= 0 and std.max() > 0
    air = hu == -1024  # outside the body mask (the air in front of the patient)
    assert 0.01 < air.mean() < 0.2 and np.all(std[air] < 1e-6)
    assert (hu[:, :3, 150:250] == -1024).mean() > 0.8, "this edge of the field of view is mostly air (dark MRI)"
    assert result.nfe == 3 and result.device == "cpu"
    assert "NFE per sample 3" in result.summary()


def test_same_seed_is_bit_identical_and_other_seed_differs(t2, model):
    first = sitk.GetArrayFromImage(synthesize(t2, model, FAST, device="cpu").ct)
    again = sitk.GetArrayFromImage(synthesize(t2, model, FAST, device="cpu").ct)
    other = sitk.GetArrayFromImage(synthesize(t2, model, SynthesisSettings(sampler="ddim", steps=3, mc=3, seed=1),
                                              device="cpu").ct)
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


def test_mean_of_kept_samples_is_the_ct(t2, model):
    settings = SynthesisSettings(sampler="ddpm", steps=4, mc=3, seed=2, batch_size=2, keep_samples=True)
    result = synthesize(t2, model, settings, device="cpu")
    assert len(result.samples) == 3
    stacked = np.stack([sitk.GetArrayFromImage(s) for s in result.samples])
    np.testing.assert_allclose(stacked.mean(0), sitk.GetArrayFromImage(result.ct), atol=1e-2)
    # resampling is a weighted average, and the spread of an average is at most the average of the spreads
    spread = stacked.std(0, ddof=1)
    uncertainty = sitk.GetArrayFromImage(result.uncertainty)
    assert np.all(spread <= uncertainty + 1e-2) and uncertainty.max() > 0


def test_context_only_edges_are_left_as_air_and_the_rest_synthesized(t2, model):
    settings = SynthesisSettings(sampler="ddim", steps=2, mc=2, seed=0, context_only_edges=2)
    result = synthesize(t2, model, settings, device="cpu")
    hu, std = sitk.GetArrayFromImage(result.ct), sitk.GetArrayFromImage(result.uncertainty)
    assert np.all(hu[:2] == -1024) and np.all(hu[-2:] == -1024) and np.all(std[:2] < 1.0)  # HU
    assert (hu[2:-2] > -500).mean() > 0.3 and std[2:-2].max() > 0
    with pytest.raises(UserInputError, match="no slice left"):
        synthesize(t2, model, SynthesisSettings(sampler="ddim", steps=2, mc=1, context_only_edges=t2.GetSize()[2]),
                   device="cpu")


def test_oblique_anisotropic_input_keeps_its_geometry(t2, model, make_oblique):
    image = make_oblique(t2[60:300:2, 80:300:2, 4:12])
    result = synthesize(image, model, SynthesisSettings(sampler="dpmpp", steps=2, mc=1), device="cpu")
    assert same_geometry(result.ct, image, 1e-9) and same_geometry(result.uncertainty, image, 1e-9)


def test_progress_reaches_the_end(t2, model):
    seen = []
    synthesize(t2[:, :, :4], model, SynthesisSettings(sampler="ddim", steps=2, mc=2, batch_size=4), device="cpu",
               progress=lambda done, total, message="": seen.append((done, total)))
    assert seen[-1][0] == seen[-1][1] and all(d <= t for d, t in seen)


def test_cancel_raises_and_returns_nothing(t2, model):
    from CTSynthesisCore.errors import Cancelled
    from CTSynthesisCore.progress import CancelToken

    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        synthesize(t2, model, FAST, device="cpu", cancel=token)


def test_ct_input_gets_a_warning(ct_sample, model):
    ct = sitk.ReadImage(str(ct_sample))[:, :, 50:53]
    result = synthesize(ct, model, SynthesisSettings(sampler="ddim", steps=1, mc=1), device="cpu")
    assert any("looks like a CT" in w for w in result.warnings)


def test_cli_writes_ct_uncertainty_and_samples(tmp_path, t2_sample, tiny_model, capsys):
    code = main(["synthesize", str(t2_sample), "--output", str(tmp_path / "sct.nii.gz"), "--uncertainty",
                 str(tmp_path / "std.nrrd"), "--samples-dir", str(tmp_path / "samples"), "--model", str(tiny_model),
                 "--sampler", "ddim", "--steps", "2", "--mc", "2", "--quiet"])
    assert code == 0
    out = capsys.readouterr().out
    assert "device cpu" in out and "sampler ddim" in out and "NFE per sample 2" in out
    reference = sitk.ReadImage(str(t2_sample))
    for path in [tmp_path / "sct.nii.gz", tmp_path / "std.nrrd", *sorted((tmp_path / "samples").iterdir())]:
        assert same_geometry(read_volume(path), reference, 1e-5), path
    assert len(list((tmp_path / "samples").iterdir())) == 2


def test_cli_folder_output_is_a_dicom_ct_series(tmp_path, t2_sample, tiny_model):
    folder = tmp_path / "sct_dicom"
    assert main(["synthesize", str(t2_sample), "--output", str(folder), "--model", str(tiny_model), "--sampler",
                 "ddim", "--steps", "1", "--mc", "1", "--quiet"]) == 0
    assert main(["synthesize", str(t2_sample), "--output", str(tmp_path / "ref.nii.gz"), "--model", str(tiny_model),
                 "--sampler", "ddim", "--steps", "1", "--mc", "1", "--quiet"]) == 0
    series = read_volume(folder)
    reference = read_volume(tmp_path / "ref.nii.gz")
    assert len(list(folder.iterdir())) == reference.GetSize()[2]
    assert series.GetMetaData("0008|0060").strip() == "CT"
    assert "DERIVED" in series.GetMetaData("0008|0008") and "research" in series.GetMetaData("0008|103e")
    assert series.GetMetaData("0028|1054").strip() == "HU"
    # same physical volume (the series may store slices in the opposite order)
    on_reference = sitk.Resample(series, reference, sitk.Transform(), sitk.sitkNearestNeighbor, -5000, sitk.sitkFloat32)
    difference = np.abs(sitk.GetArrayFromImage(on_reference) - np.round(sitk.GetArrayFromImage(reference)))
    assert difference.max() <= 1.0


def test_samplers_command_lists_all_six(capsys):
    assert main(["samplers"]) == 0
    out = capsys.readouterr().out
    for name in ["ddpm", "em", "pc", "ode", "ddim", "dpmpp"]:
        assert name in out


def _bad_volume(tmp_path, kind) -> Path:
    path = tmp_path / f"{kind}.mha"  # MetaImage keeps NaN voxels
    if kind == "text":
        path.write_text("not an image")
    elif kind == "2d":
        sitk.WriteImage(sitk.Image(8, 8, sitk.sitkFloat32), str(path))
    elif kind == "vector":
        sitk.WriteImage(sitk.Image([8, 8, 4], sitk.sitkVectorFloat32, 2), str(path))
    elif kind == "constant":
        sitk.WriteImage(sitk.Image(8, 8, 4, sitk.sitkFloat32) + 5.0, str(path))
    elif kind == "nan":
        array = np.ones((4, 8, 8), np.float32)
        array[2, 3, 3] = np.nan
        sitk.WriteImage(sitk.GetImageFromArray(array), str(path))
    return path


@pytest.mark.parametrize("case,expected", [
    ("missing", "input not found"),
    ("text", "cannot read"),
    ("2d", "must be a 3D volume"),
    ("vector", "scalar volume"),
    ("constant", "constant"),
    ("nan", "NaN"),
    ("sampler", "invalid choice"),
    ("steps", "must be at least 1"),
    ("mc", "must be at least 1"),
    ("weights", "corrupt or was changed"),
    ("model", "not found"),
    ("same_path", "is the input file"),
    ("no_folder", "output folder does not exist"),
    ("option", "do not apply to sampler"),
])
def test_cli_bad_input_is_one_error_line_exit_2_and_no_output(tmp_path, t2_sample, tiny_model, capsys, case, expected):
    source = Path(t2_sample)
    model = tiny_model
    output = tmp_path / "out.nii.gz"
    extra: list[str] = []
    if case in {"missing", "text", "2d", "vector", "constant", "nan"}:
        source = tmp_path / "missing.nii.gz" if case == "missing" else _bad_volume(tmp_path, case)
    elif case == "sampler":
        extra = ["--sampler", "euler"]
    elif case == "steps":
        extra = ["--steps", "0"]
    elif case == "mc":
        extra = ["--mc", "0"]
    elif case == "weights":
        model = tmp_path / "broken"
        shutil.copytree(tiny_model, model)
        with open(model / "model.pt", "r+b") as handle:
            handle.seek(200)
            handle.write(b"\x00\x01\x02")
    elif case == "model":
        model = "no-such-model"
    elif case == "same_path":
        source = tmp_path / "t2.nii.gz"
        shutil.copy(t2_sample, source)
        output = source
    elif case == "no_folder":
        output = tmp_path / "missing" / "out.nii.gz"
    elif case == "option":
        extra = ["--eta", "0.5", "--sampler", "ddpm"]
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}
    code = main(["synthesize", str(source), "--output", str(output), "--model", str(model), "--steps", "1",
                 "--mc", "1", "--quiet", *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("error:") and expected in err[0], err
    after = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}
    assert after == before, "nothing may be written or modified"


def test_console_script_runs_without_traceback(tmp_path):
    script = Path(sys.executable).parent / "mritoct"
    assert script.exists(), "pip install should create the mritoct console script"
    help_run = subprocess.run([str(script), "--help"], capture_output=True, text=True)
    assert help_run.returncode == 0 and "synthesize" in help_run.stdout
    bad = subprocess.run([str(script), "synthesize", str(tmp_path / "none.nii.gz"), "--output",
                          str(tmp_path / "o.nii.gz")], capture_output=True, text=True)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and bad.stderr.startswith("error:")


def test_scenario_under_slicer_core(mrml_scene, tiny_model):
    from MRItoCTLib.slicer.scenarios import run_synthesis_scenario

    run_synthesis_scenario(mrml_scene, unittest.TestCase(), model=str(tiny_model))


def test_scenario_with_oblique_input_and_output_equal_to_input_refused(mrml_scene, tiny_model, t2_sample, make_oblique):
    from CTSynthesisCore.errors import UserInputError
    from MRItoCTLib.slicer.nodes import synthesize_nodes
    from MRItoCTLib.slicer.scenarios import add_volume_node, run_synthesis_scenario

    image = make_oblique(sitk.ReadImage(str(t2_sample))[40:340:2, 40:340:2, 2:10])
    run_synthesis_scenario(mrml_scene, unittest.TestCase(), model=str(tiny_model), image=image)
    node = add_volume_node(mrml_scene, image, "in")
    with pytest.raises(UserInputError, match="cannot be the input"):
        synthesize_nodes(node, node, None, FAST, model=str(tiny_model), device="cpu")


def test_dicom_series_input_to_dicom_output_keeps_patient_and_frame_of_reference(tmp_path, t2_sample, tiny_model):
    from MRItoCTLib.dicom_series import write_ct_series

    t2 = sitk.ReadImage(str(t2_sample))[100:260, 100:260, 6:12]
    identity = sitk.Image(1, 1, 1, sitk.sitkInt16)
    for tag, value in {"0010|0020": "PX0000", "0010|0010": "Test^Patient", "0020|0052": "1.2.3.4.5"}.items():
        identity.SetMetaData(tag, value)
    write_ct_series(sitk.Cast(t2, sitk.sitkFloat32), tmp_path / "mri_dicom", source=identity)
    mri = read_volume(tmp_path / "mri_dicom")
    assert mri.GetSize() == t2.GetSize()
    assert main(["synthesize", str(tmp_path / "mri_dicom"), "--output", str(tmp_path / "sct_dicom"), "--model",
                 str(tiny_model), "--sampler", "ddim", "--steps", "1", "--mc", "1", "--quiet"]) == 0
    sct = read_volume(tmp_path / "sct_dicom")
    assert sct.GetMetaData("0010|0020").strip() == "PX0000"
    assert sct.GetMetaData("0020|0052").strip() == "1.2.3.4.5"
    assert sct.GetMetaData("0020|000e") != mri.GetMetaData("0020|000e")  # a new series
    assert same_geometry(sitk.Resample(sct, mri), mri, 1e-4)


def model_grid_image(array: np.ndarray, spacing_mm: float) -> sitk.Image:
    """An axial volume already on a model's grid (identity direction), so that mirroring its array is exact."""
    image = sitk.GetImageFromArray(np.ascontiguousarray(array))
    image.SetSpacing((spacing_mm, spacing_mm, spacing_mm))
    return image


@pytest.mark.parametrize("axis, sample", [(2, 1), (1, 2)])
def test_test_time_flips_mirror_a_sample_and_mirror_it_back(model, t2, axis, sample):
    """Sample 1 (left-right) and sample 2 (anterior-posterior) of a run with test-time flips are the same samples of
    a run without them on the MRI mirrored that way, mirrored back: same noise draws, the network sees the mirror."""
    mri = sitk.GetArrayFromImage(t2)[8:11, 64:320:4, 64:320:4]
    settings = SynthesisSettings(sampler="ddpm", steps=2, mc=3, seed=5, batch_size=9, keep_samples=True,
                                 test_time_shifts=False)
    flipped = synthesize(model_grid_image(mri, 3.0), model, settings, device="cpu")
    plain = synthesize(model_grid_image(np.flip(mri, axis), 3.0), model, replace(settings, test_time_flips=False),
                       device="cpu")
    mirrored_back = np.flip(sitk.GetArrayFromImage(plain.samples[sample]), axis)
    np.testing.assert_allclose(sitk.GetArrayFromImage(flipped.samples[sample]), mirrored_back, atol=0.5)
    assert np.abs(sitk.GetArrayFromImage(flipped.samples[0]) - mirrored_back).max() > 10.0


def test_mirror_copies_flips_each_copy_block_and_leaves_an_unmirrored_batch_alone():
    batch = torch.arange(2 * 2 * 1 * 2 * 3, dtype=torch.float32).reshape(4, 1, 2, 3)  # 2 copies of 2 slices
    mirrored = mirror_copies(batch, [(), (-1,)])
    assert torch.equal(mirrored[:2], batch[:2]) and torch.equal(mirrored[2:], batch[2:].flip(-1))
    assert mirror_copies(batch, [(), ()]) is batch, "no copy to mirror: the batch is not split and joined again"
    assert sample_mirrorings(2, 3, True) == [(-2,), (), (-1,)] and sample_mirrorings(0, 2, False) == [(), ()]


def test_test_time_shifts_shift_a_sample_and_shift_it_back(model, t2):
    """Sample 1 of a run with test-time shifts is sample 1 of a run without them on the MRI moved by its shift (air
    before it, which the frame's mirroring also puts there), moved back: the network sees the image at another phase
    of its downsampling grid."""
    body = sitk.GetArrayFromImage(t2)[8:11, 64:304:4, 64:304:4]  # 60 x 60 pixels of tissue
    mri = np.pad(body, [(0, 0), (10, 9), (10, 9)])  # 79 x 79: one more pixel of margin fits the same padded size
    settings = SynthesisSettings(sampler="ddpm", steps=2, mc=2, seed=5, batch_size=6, keep_samples=True,
                                 test_time_flips=False)
    shift = sample_shifts(1, 1, model.config.size_multiple, True)[0]
    assert shift > 0
    shifted = synthesize(model_grid_image(mri, 3.0), model, settings, device="cpu")
    plain = synthesize(model_grid_image(np.roll(mri, shift, (1, 2)), 3.0), model,
                       replace(settings, test_time_shifts=False), device="cpu")
    moved_back = np.roll(sitk.GetArrayFromImage(plain.samples[1]), -shift, (1, 2))
    np.testing.assert_allclose(sitk.GetArrayFromImage(shifted.samples[1]), moved_back, atol=0.5)
    assert np.abs(sitk.GetArrayFromImage(shifted.samples[0]) - moved_back).max() > 10.0


def test_a_frame_continues_the_image_by_mirroring_about_its_edge_pixels():
    image = np.array([[1.0, 2.0, 3.0]])
    assert framed(image, (1, 6), 1).tolist() == [[2.0, 1.0, 2.0, 3.0, 2.0, 1.0]]
    assert framed(torch.tensor(image), (1, 4)).tolist() == [[1.0, 2.0, 3.0, 2.0]]
    padded, size = pad_to_multiple(np.arange(10 * 16, dtype=float).reshape(1, 10, 16), 8, margin=6)
    assert padded.shape == (1, 16, 24) and size == (10, 16)  # at least 6 pixels after the image
    assert np.array_equal(padded[0, :10, :16], np.arange(160).reshape(10, 16))
    assert np.array_equal(padded[0, 10, :16], padded[0, 8, :16]), "row 10 mirrors row 8 about the edge row 9"


def test_shifted_copies_move_each_copy_block_and_back():
    image = torch.arange(1 * 3 * 3, dtype=torch.float32).reshape(1, 1, 3, 3)
    batch = torch.cat([framed(image, (4, 4))] * 2)  # 2 copies of 1 slice, each a 3 x 3 image in a 4 x 4 frame
    moved = shifted_copies(batch, [0, 1], (3, 3))
    assert torch.equal(moved[0], batch[0]) and torch.equal(moved[1, :, 1:, 1:], image[0])
    assert torch.equal(unshifted_copies(moved, [0, 1])[:, :, :3, :3], torch.cat([image, image]))
    assert shifted_copies(batch, [0, 0], (3, 3)) is batch, "no copy to shift: the batch is not split and joined again"
    assert sample_shifts(0, 5, 8, True) == [0, 4, 2, 6, 0] and sample_shifts(1, 2, 8, False) == [0, 0]
    assert largest_shift(4, 8, True) == 6 and largest_shift(1, 8, True) == 0 and largest_shift(4, 8, False) == 0


def test_test_time_shifts_are_on_unless_the_command_line_turns_them_off():
    from MRItoCTLib.cli import build_parser, settings_from_arguments

    arguments = ["synthesize", "in.nii.gz", "--output", "o.nii.gz"]
    assert settings_from_arguments(build_parser().parse_args(arguments)).test_time_shifts
    assert not settings_from_arguments(build_parser().parse_args(arguments + ["--no-test-time-shifts"])).test_time_shifts


def test_test_time_flips_keep_the_output_grid_and_the_seed(model, t2):
    first, second = (synthesize(t2, model, replace(FAST, mc=4), device="cpu") for _ in range(2))
    assert same_geometry(first.ct, t2, 1e-9) and same_geometry(first.uncertainty, t2, 1e-9)
    assert np.array_equal(sitk.GetArrayFromImage(first.ct), sitk.GetArrayFromImage(second.ct))


def test_test_time_flips_are_on_unless_the_command_line_turns_them_off():
    from MRItoCTLib.cli import build_parser, settings_from_arguments

    arguments = ["synthesize", "in.nii.gz", "--output", "o.nii.gz"]
    assert settings_from_arguments(build_parser().parse_args(arguments)).test_time_flips
    assert not settings_from_arguments(build_parser().parse_args(arguments + ["--no-test-time-flips"])).test_time_flips


def test_shared_slice_noise_gives_identical_slices_for_identical_input(tiny_model, t2_sample):
    """With shared slice noise a Monte-Carlo sample's slices draw the same noise, so identical MRI slices give
    identical CT slices (no stripes from the sampler); with independent noise they differ."""
    mri = sitk.ReadImage(str(t2_sample))[100:164, 100:164, 9:10]
    stack = sitk.JoinSeries([mri[:, :, 0]] * 6)
    stack.SetSpacing(mri.GetSpacing())
    stack.SetDirection(mri.GetDirection())
    stack.SetOrigin(mri.GetOrigin())
    model = load_model(str(tiny_model))
    outputs = {}
    for noise in ("shared", "independent"):
        settings = SynthesisSettings(sampler="ddpm", steps=3, mc=2, seed=4, batch_size=4, slice_noise=noise)
        outputs[noise] = sitk.GetArrayFromImage(synthesize(stack, model, settings, device="cpu").ct)
    inner = (slice(1, -1), slice(8, -8), slice(8, -8))  # end slices see a repeated neighbour; the oblique grid's rim
    shared, independent = outputs["shared"][inner], outputs["independent"][inner]  # falls in or out by rounding
    assert np.abs(shared - shared[0]).max() < 1e-3, "shared noise across slices and batches"
    assert np.abs(independent - independent[0]).max() > 10.0
