"""Reading inputs without silent changes: NaN/Inf and ambiguous scaling in NIfTI files (which SimpleITK's and
Slicer's NIfTI reader would turn into something else without a word), and DICOM series with per-slice rescale."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from volume_files import read_volume_node, write_nifti

from CTSynthesisCore.errors import UserInputError
from CTSynthesisCore.nifti_check import check_nifti_file
from CTSynthesisCore.volume_io import read_volume


def nonfinite_volume(dtype=np.float32) -> np.ndarray:
    """A 3 x 4 x 5 ramp with one NaN, one +Inf and one -Inf voxel."""
    array = np.arange(1, 61, dtype=dtype).reshape(3, 4, 5)
    array[1, 2, 3], array[0, 0, 0], array[2, 3, 4] = np.nan, np.inf, -np.inf
    return array


def test_simpleitk_and_slicer_read_nifti_nan_and_inf_as_zero(tmp_path, mrml_scene):
    """Why the check exists: the file holds NaN and Inf, SimpleITK and Slicer's storage node read them as 0;
    the node is refused (naming the file) until the fixed volume is saved."""
    import slicer

    from CTSynthesisCore.slicer.mrml import image_from_volume_node

    path = write_nifti(tmp_path / "mri.nii.gz", nonfinite_volume())
    stored = np.frombuffer(gzip.decompress(path.read_bytes())[352:], np.float32)
    assert np.isnan(stored).sum() == 1 and np.isinf(stored).sum() == 2, "the writer must keep NaN and Inf"
    assert np.isfinite(sitk.GetArrayFromImage(sitk.ReadImage(str(path)))).all()
    node = read_volume_node(mrml_scene, path)
    voxels = slicer.util.arrayFromVolume(node)
    assert np.isfinite(voxels).all() and voxels[1, 2, 3] == 0
    with pytest.raises(UserInputError, match=r"'input' was read from mri.nii.gz, which holds 3 NaN or infinite .*save"):
        image_from_volume_node(node)
    voxels[:] = 1.0  # fixed in Slicer, then saved: the node is accepted
    slicer.util.arrayFromVolumeModified(node)
    node.GetStorageNode().SetFileName(str(tmp_path / "fixed.nii.gz"))
    assert node.GetStorageNode().WriteData(node)
    assert sitk.GetArrayFromImage(image_from_volume_node(node)).min() == 1.0


@pytest.mark.parametrize("name,dtype,version,order", [
    ("plain.nii", np.float32, 1, "<"), ("compressed.nii.gz", np.float64, 1, ">"), ("pair.hdr", np.float32, 1, "<"),
    ("analyze.hdr", np.float32, 1, ">"), ("version2.nii", np.float32, 2, "<"), ("version2.nii.gz", np.float64, 2, ">"),
])
def test_nonfinite_voxels_are_found_in_every_nifti_layout(tmp_path, name, dtype, version, order):
    path = write_nifti(tmp_path / name, nonfinite_volume(dtype), version=version, order=order)
    if name.startswith("analyze"):  # no NIfTI magic: an Analyze 7.5 header
        path.write_bytes(path.read_bytes()[:344] + bytes(4))
    targets = [path, path.with_suffix(".img")] if name.endswith(".hdr") else [path]
    for target in targets:
        with pytest.raises(UserInputError, match="holds 3 NaN or infinite voxel"):
            check_nifti_file(target, f"input {target.name}")
        message = f"input {target} holds 3 NaN or infinite voxel" if version == 1 else "cannot read"
        with pytest.raises(UserInputError, match=message):  # SimpleITK 2.5.7 cannot read NIfTI-2 at all
            read_volume(target)
    write_nifti(path, np.arange(60, dtype=dtype).reshape(3, 4, 5), version=version, order=order)
    check_nifti_file(path, "input")  # finite voxels pass


def test_integer_data_other_formats_and_non_nifti_files_are_left_to_the_reader(tmp_path):
    check_nifti_file(write_nifti(tmp_path / "ct.nii.gz", np.zeros((3, 4, 5), np.int16)), "input")
    for name in ("volume.nrrd", "volume.mha"):
        sitk.WriteImage(sitk.GetImageFromArray(nonfinite_volume()), str(tmp_path / name))
        check_nifti_file(tmp_path / name, "input")  # these formats keep NaN: check_scalar_volume refuses it later
    (tmp_path / "text.nii").write_text("not a volume", encoding="utf-8")
    check_nifti_file(tmp_path / "text.nii", "input")
    with pytest.raises(UserInputError, match="cannot read"):
        read_volume(tmp_path / "text.nii")


@pytest.mark.parametrize("slope,inter,refused", [
    (1.0, 0.0, False), (2.0, -1024.0, False), (np.nan, np.nan, False), (0.0, 0.0, False),  # NaN/NaN: nibabel's "none"
    (0.0, 5.0, True), (np.nan, 5.0, True), (np.inf, -3.0, True), (1.0, np.inf, True), (2.0, np.nan, True),
])
def test_ambiguous_nifti_scaling_is_refused(tmp_path, slope, inter, refused):
    """ITK adds scl_inter even when scl_slope is 0 or not finite (the standard: no scaling at all), and takes a
    non-finite scl_inter beside a valid slope as 0 (nibabel refuses it): such headers are refused."""
    stored = np.arange(60, dtype=np.int16).reshape(3, 4, 5)
    path = write_nifti(tmp_path / "scaled.nii.gz", stored, scaling=(slope, inter))
    if not refused:
        expected = stored * slope + inter if np.isfinite(slope) and slope != 0 else stored
        np.testing.assert_allclose(sitk.GetArrayFromImage(read_volume(path)), expected)
        return
    if not np.isfinite(inter):
        assert np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(path))), stored * slope)  # ITK: inter 0
    else:
        assert np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(path))), stored + inter)  # ITK: slope 1
    with pytest.raises(UserInputError, match="ambiguous intensity scaling in its NIfTI header"):
        read_volume(path)


def test_uint16_with_an_offset_reads_without_overflow(tmp_path):
    stored = np.array([0, 1024, 2000, 65535], np.uint16).reshape(1, 2, 2).repeat(3, axis=0)
    image = read_volume(write_nifti(tmp_path / "ct.nii.gz", stored, scaling=(1.0, -1024.0)))
    assert image.GetPixelID() == sitk.sitkFloat32
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image)[0].ravel(), [-1024, 0, 976, 64511])


def write_dicom_series(folder: Path, slices: list[tuple[float, float]]) -> None:
    """CT slices of 16-bit stored values whose (rescale slope, real value) are given per slice."""
    folder.mkdir()
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for index, (slope, value) in enumerate(slices):
        image = sitk.GetImageFromArray(np.full((4, 5), value, np.float32))
        tags = {"0008|0060": "CT", "0020|000e": "1.2.826.0.1.3680043.2.1125.7", "0020|0013": str(index + 1),
                "0020|0032": f"0\\0\\{index}", "0020|0037": "1\\0\\0\\0\\1\\0", "0028|1052": "-1024",
                "0028|1053": str(slope), "0008|0018": f"1.2.826.0.1.3680043.2.1125.7.{index + 1}",
                "0028|0100": "16", "0028|0101": "16", "0028|0102": "15", "0028|0103": "0"}
        for key, text in tags.items():
            image.SetMetaData(key, text)
        writer.SetFileName(str(folder / f"{index:03d}.dcm"))
        writer.Execute(image)


def test_dicom_series_with_per_slice_rescale_is_read_as_float(tmp_path):
    """SimpleITK gives a series the first slice's voxel type (here 32-bit integers), truncating -1022.5 of a slice
    with slope 0.5 to -1022; read_volume reads such a series as 64-bit float."""
    write_dicom_series(tmp_path / "mixed", [(1, -1021.0), (0.5, -1022.5), (1, -1021.0)])
    files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(tmp_path / "mixed"))
    assert sitk.GetArrayFromImage(sitk.ReadImage(files))[1, 0, 0] == -1022  # the silent truncation
    image = read_volume(tmp_path / "mixed")
    assert image.GetPixelID() == sitk.sitkFloat64
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image)[:, 0, 0], [-1021.0, -1022.5, -1021.0])
    write_dicom_series(tmp_path / "same", [(1, -1021.0), (1, -1000.0)])
    assert read_volume(tmp_path / "same").GetPixelID() == sitk.sitkInt32  # unchanged: GDCM's own type
