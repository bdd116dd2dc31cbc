"""Shared core: device choice, progress/cancel, weights verification, volume I/O."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from CTSynthesisCore.device import choose_device, cuda_status
from CTSynthesisCore.errors import Cancelled, UserInputError
from CTSynthesisCore.metrics import ssim_map
from CTSynthesisCore.progress import CancelToken, StageProgress
from CTSynthesisCore.volume_io import check_output_path, check_scalar_volume, read_volume, same_geometry, write_volume
from CTSynthesisCore.weights import list_models, load_state_dict, read_metadata, resolve_model_folder, save_model_folder


def test_device_cpu_and_auto_explain_themselves():
    assert choose_device("cpu").device == "cpu"
    choice = choose_device("auto")
    usable, why = cuda_status()
    assert choice.device == ("cuda" if usable else "cpu")
    assert why in choice.reason


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a usable GPU")
def test_cuda_requested_without_gpu_is_a_user_error():
    with pytest.raises(UserInputError, match="CUDA was requested but"):
        choose_device("cuda")


def test_unknown_device_is_a_user_error():
    with pytest.raises(UserInputError, match="unknown device"):
        choose_device("tpu")


def test_cancel_token_and_stage_progress():
    token = CancelToken()
    token.raise_if_set()
    token.cancel()
    with pytest.raises(Cancelled):
        token.raise_if_set()
    seen = []
    stage = StageProgress(lambda d, t, m="": seen.append((d, t)), 0.5, 1.0, total=100)
    stage(1, 2)
    assert seen == [(75, 100)]


@pytest.fixture
def model_folder(tmp_path) -> Path:
    state = {"weight": torch.arange(6, dtype=torch.float32).reshape(2, 3)}
    return save_model_folder(tmp_path / "m", state, {"name": "m", "task": "test"}, "card")


def test_weights_round_trip_with_checksum(model_folder):
    metadata = read_metadata(model_folder)
    assert len(metadata["sha256"]) == 64
    assert torch.equal(load_state_dict(metadata)["weight"], torch.arange(6, dtype=torch.float32).reshape(2, 3))
    assert (model_folder / "MODEL_CARD.md").read_text(encoding="utf-8") == "card"


def test_a_card_given_as_a_function_is_rendered_from_the_metadata_as_written(tmp_path):
    folder = save_model_folder(tmp_path / "m", {"weight": torch.zeros(2)}, {"name": "m", "task": "test"},
                               lambda metadata: f"{metadata['name']} {metadata['sha256']}")
    assert (folder / "MODEL_CARD.md").read_text(encoding="utf-8") == f"m {read_metadata(folder)['sha256']}"


def test_changed_weights_are_refused(model_folder):
    path = model_folder / "model.pt"
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(UserInputError, match="corrupt or was changed"):
        load_state_dict(read_metadata(model_folder))


def test_truncated_and_missing_weights_are_refused(model_folder):
    path = model_folder / "model.pt"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(UserInputError, match="corrupt"):
        load_state_dict(read_metadata(model_folder))
    path.unlink()
    with pytest.raises(UserInputError, match="weights file missing"):
        load_state_dict(read_metadata(model_folder))


def test_bad_metadata_and_unknown_model(tmp_path, model_folder):
    (model_folder / "metadata.json").write_text("{not json")
    with pytest.raises(UserInputError, match="not valid JSON"):
        read_metadata(model_folder)
    (model_folder / "metadata.json").write_text(json.dumps({"name": "x"}))
    with pytest.raises(UserInputError, match="lacks 'weights_file'"):
        read_metadata(model_folder)
    with pytest.raises(UserInputError, match="not found"):
        resolve_model_folder("no-such-model")


def test_list_models_finds_folders_under_the_env_root(tmp_path, monkeypatch, model_folder):
    monkeypatch.setenv("CTSYNTHESIS_WEIGHTS", str(model_folder.parent))
    assert "m" in [m["name"] for m in list_models("test")]


def _volume(shape=(4, 5, 6), dtype=np.float32) -> sitk.Image:
    image = sitk.GetImageFromArray(np.arange(np.prod(shape)).reshape(shape).astype(dtype))
    image.SetSpacing((0.5, 0.7, 3.0))
    image.SetOrigin((1.0, 2.0, 3.0))
    return image


@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd", ".mha"])
def test_write_then_read_keeps_geometry_and_leaves_no_partial_files(tmp_path, suffix):
    image = _volume()
    path = write_volume(image, tmp_path / f"out{suffix}")
    back = read_volume(path)
    assert same_geometry(back, image, 1e-5)
    assert np.array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(image))
    assert [p.name for p in tmp_path.iterdir()] == [f"out{suffix}"]


def test_read_errors_are_one_line_user_errors(tmp_path):
    with pytest.raises(UserInputError, match="input not found"):
        read_volume(tmp_path / "missing.nii.gz")
    fake = tmp_path / "fake.nii.gz"
    fake.write_text("this is text, not a volume")
    with pytest.raises(UserInputError, match="cannot read") as info:
        read_volume(fake)
    assert "\n" not in str(info.value)
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(UserInputError, match="no DICOM series"):
        read_volume(tmp_path / "empty_dir")


def test_check_scalar_volume_refuses_bad_images():
    with pytest.raises(UserInputError, match="3D"):
        check_scalar_volume(sitk.Image(4, 4, sitk.sitkFloat32))
    with pytest.raises(UserInputError, match="components"):
        check_scalar_volume(sitk.Image([4, 4, 4], sitk.sitkVectorFloat32, 3))
    array = np.zeros((3, 4, 4), np.float32)
    array[1, 2, 2] = np.nan
    with pytest.raises(UserInputError, match="NaN"):
        check_scalar_volume(sitk.GetImageFromArray(array))
    array[1, 2, 2] = 1e30
    with pytest.raises(UserInputError, match="extreme"):
        check_scalar_volume(sitk.GetImageFromArray(array))
    with pytest.raises(UserInputError, match="at least 3"):
        check_scalar_volume(_volume((2, 4, 4)), min_slices=3)
    check_scalar_volume(_volume())


def test_check_output_path(tmp_path):
    source = tmp_path / "in.nii.gz"
    source.write_bytes(b"x")
    with pytest.raises(UserInputError, match="is the input"):
        check_output_path(source, inputs=(source,))
    with pytest.raises(UserInputError, match="does not exist"):
        check_output_path(tmp_path / "no" / "such" / "out.nii.gz")
    with pytest.raises(UserInputError, match="unsupported output format"):
        check_output_path(tmp_path / "out.txt")
    if os.geteuid() != 0:  # root can write anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(UserInputError, match="not writable"):
            check_output_path(locked / "out.nii.gz")
    assert check_output_path(tmp_path / "out.nii.gz") == tmp_path / "out.nii.gz"


def test_ssim_in_slice_groups_equals_the_plain_gaussian_window_formula():
    """ssim_map works on groups of slices with a separable window (a 2D convolution of a whole 512 x 512 CT asked
    for 34 GB); it must equal the textbook formula with the 2D Gaussian window, whatever the group size."""
    rng = np.random.default_rng(0)
    reference = rng.random((5, 30, 27)) * 100
    prediction = reference + rng.normal(0, 8, reference.shape)
    sigma, radius = 1.5, 5
    coords = torch.arange(-radius, radius + 1, dtype=torch.float64)
    window = torch.exp(-(coords[:, None] ** 2 + coords[None, :] ** 2) / (2 * sigma**2))
    window = (window / window.sum())[None, None]

    def blur(x: np.ndarray) -> torch.Tensor:
        padded = torch.nn.functional.pad(torch.from_numpy(x)[:, None], [radius] * 4, mode="replicate")
        return torch.nn.functional.conv2d(padded, window)[:, 0]

    c1, c2 = 1.0, 9.0  # (0.01 * 100) ** 2, (0.03 * 100) ** 2
    mx, my = blur(prediction), blur(reference)
    vx, vy = blur(prediction**2) - mx**2, blur(reference**2) - my**2
    cov = blur(prediction * reference) - mx * my
    expected = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    for max_voxels in (1, 30 * 27 * 2, 2**22):
        assert np.allclose(ssim_map(prediction, reference, 100.0, max_voxels=max_voxels), expected.numpy(), atol=1e-12)
    assert np.allclose(ssim_map(reference, reference, 100.0), 1.0)
