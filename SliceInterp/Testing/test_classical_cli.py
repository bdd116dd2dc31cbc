"""Classical slice interpolation: geometry along the slice axis, observed slices untouched, CLI errors."""

import unittest

import numpy as np
import pytest
import SimpleITK as sitk

from CTSynthesisCore.volume_io import read_volume
from SliceInterpLib.classical import finer_grid, upsample_classical
from SliceInterpLib.cli import main


@pytest.fixture(scope="module")
def ct(ct_sample) -> sitk.Image:
    return sitk.ReadImage(str(ct_sample))[20:80, 20:80, 30:50]


@pytest.mark.parametrize("method", ["linear", "cubic", "sinc"])
@pytest.mark.parametrize("factor", [2, 3, 4])
def test_finer_grid_and_bit_exact_observed_slices(ct, make_oblique, method, factor):
    image = make_oblique(ct)
    result = upsample_classical(image, image.GetSpacing()[2] / factor, method)
    assert result.GetSize() == (*image.GetSize()[:2], (image.GetSize()[2] - 1) * factor + 1)
    np.testing.assert_allclose(result.GetSpacing(), (*image.GetSpacing()[:2], image.GetSpacing()[2] / factor))
    assert result.GetOrigin() == image.GetOrigin() and result.GetDirection() == image.GetDirection()
    assert result.GetPixelID() == image.GetPixelID()
    assert np.array_equal(sitk.GetArrayViewFromImage(result)[::factor], sitk.GetArrayViewFromImage(image))
    # new slices lie at the physical positions between the observed ones
    middle = np.array(result.TransformIndexToPhysicalPoint((0, 0, 1)))
    expected = (np.array(image.TransformIndexToPhysicalPoint((0, 0, 0))) * (factor - 1)
                + np.array(image.TransformIndexToPhysicalPoint((0, 0, 1)))) / factor
    np.testing.assert_allclose(middle, expected, atol=1e-9)


def test_linear_midpoint_is_the_average(ct):
    result = upsample_classical(sitk.Cast(ct, sitk.sitkFloat32), ct.GetSpacing()[2] / 2, "linear")
    array, source = sitk.GetArrayFromImage(result), sitk.GetArrayFromImage(ct).astype(np.float32)
    np.testing.assert_allclose(array[1], (source[0] + source[1]) / 2, atol=1e-3)


def test_target_spacing_that_does_not_divide(ct):
    reference = finer_grid(ct, 1.25)
    assert reference.GetSize()[2] == int((ct.GetSize()[2] - 1) * 3.0 / 1.25) + 1


def test_cli_upsample_writes_the_finer_volume(tmp_path, ct_sample, capsys):
    output = tmp_path / "fine.nii.gz"
    assert main(["upsample", str(ct_sample), "--output", str(output), "--factor", "2", "--method", "cubic"]) == 0
    result, source = read_volume(output), read_volume(ct_sample)
    assert result.GetSize()[2] == 2 * source.GetSize()[2] - 1
    assert "slices" in capsys.readouterr().out


@pytest.mark.parametrize("args,expected", [
    (["--factor", "1"], "factor must be an integer from 2 to 8"),
    (["--factor", "9"], "factor must be an integer from 2 to 8"),
    (["--factor", "2", "--method", "magic"], "invalid choice"),
    (["--spacing", "5"], "below the current"),
])
def test_cli_errors(tmp_path, ct_sample, capsys, args, expected):
    output = tmp_path / "out.nii.gz"
    assert main(["upsample", str(ct_sample), "--output", str(output), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and expected in err[0], err
    assert not output.exists()


def test_cli_refuses_too_few_slices(tmp_path, ct, capsys):
    path = tmp_path / "two.nii.gz"
    sitk.WriteImage(ct[:, :, :2], str(path))
    assert main(["upsample", str(path), "--output", str(tmp_path / "o.nii.gz"), "--factor", "2"]) == 2
    assert "at least 3" in capsys.readouterr().err


def test_scenario_under_slicer_core(mrml_scene, ct, make_oblique):
    from SliceInterpLib.slicer.scenarios import run_upsample_scenario

    run_upsample_scenario(mrml_scene, unittest.TestCase(), image=make_oblique(ct), factor=3, method="cubic")
    run_upsample_scenario(mrml_scene, unittest.TestCase(), method="linear")
