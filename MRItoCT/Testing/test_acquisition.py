"""Out-of-domain input by its DICOM header: the engine (DICOM folder in the CLI) and the Slicer node (a volume
loaded by Slicer's DICOM module) warn about a series that is not a pelvic T2-weighted spin echo."""

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from MRItoCTLib.acquisition import (BODY_PART, ECHO_TIME, MODALITY, REPETITION_TIME, SCAN_OPTIONS, SCANNING_SEQUENCE,
                                    acquisition_warnings)

PELVIC_T2 = {MODALITY: "MR", BODY_PART: "PELVIS", SCANNING_SEQUENCE: "SE", SCAN_OPTIONS: "", ECHO_TIME: "104",
             REPETITION_TIME: "4000"}


@pytest.mark.parametrize("changes, expected", [
    ({}, []),
    ({BODY_PART: "PROSTATE "}, []),
    ({ECHO_TIME: "12", REPETITION_TIME: "550"}, ["TE 12 ms, TR 550 ms: not a T2-weighted series"]),
    ({ECHO_TIME: "100\\110", REPETITION_TIME: "600"}, ["TE 100 ms, TR 600 ms: not a T2-weighted"]),
    ({BODY_PART: "HEAD"}, ["body part HEAD"]),
    ({BODY_PART: "ABDOMEN"}, ["body part ABDOMEN"]),
    ({SCANNING_SEQUENCE: "GR"}, ["scanning sequence GR, not spin echo"]),
    ({SCANNING_SEQUENCE: "SE\\IR"}, ["inversion-recovery"]),
    ({SCAN_OPTIONS: "SAT1\\FS"}, ["fat-suppressed"]),
    ({MODALITY: "CT"}, ["modality CT, not MR"]),
])
def test_header_warnings_name_what_is_wrong(changes, expected):
    warnings = acquisition_warnings({**PELVIC_T2, **changes})
    assert len(warnings) == len(expected)
    for warning, start in zip(warnings, expected):
        assert warning.startswith(start) or start in warning


def test_a_missing_or_unreadable_header_is_not_held_against_the_input():
    assert acquisition_warnings({}) == []
    assert acquisition_warnings({ECHO_TIME: "", REPETITION_TIME: "n/a", BODY_PART: " "}) == []


def write_mr_series(image: sitk.Image, folder: Path, header: dict[str, str]) -> list[str]:
    """A real DICOM MR series (one file per slice) with ``header``'s tags; returns the SOP instance UIDs in order."""
    folder.mkdir()
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    series, uids = "1.2.826.0.1.3680043.2.1125.1", []
    direction = np.array(image.GetDirection()).reshape(3, 3)
    for k in range(image.GetSize()[2]):
        plane = sitk.Cast(image[:, :, k], sitk.sitkInt16)
        uids.append(f"{series}.{k + 1}")
        tags = {**header, "0020|000e": series, "0008|0018": uids[-1], "0020|0013": str(k + 1),
                "0020|0032": "\\".join(f"{v:.4f}" for v in image.TransformIndexToPhysicalPoint((0, 0, k))),
                "0020|0037": "\\".join(f"{v:.6f}" for v in list(direction[:, 0]) + list(direction[:, 1]))}
        for tag, value in tags.items():
            plane.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"{k:03d}.dcm"))
        writer.Execute(plane)
    return uids


@pytest.fixture
def t1_head_series(tmp_path, t2_sample) -> tuple[Path, list[str]]:
    t2 = sitk.ReadImage(str(t2_sample))[100:228, 100:228, 6:10]
    header = {**PELVIC_T2, BODY_PART: "HEAD", ECHO_TIME: "12", REPETITION_TIME: "550"}
    folder = tmp_path / "t1_head"
    return folder, write_mr_series(t2, folder, header)


def test_a_t1_head_series_warns_in_the_engine_and_the_cli(t1_head_series, tmp_path, tiny_model, capsys):
    from CTSynthesisCore.volume_io import read_volume
    from MRItoCTLib.cli import main
    from MRItoCTLib.pipeline import check_mri

    folder, _ = t1_head_series
    warnings = check_mri(read_volume(folder))
    assert [w.split(":")[0] for w in warnings] == ["TE 12 ms, TR 550 ms", "body part HEAD"]
    assert main(["synthesize", str(folder), "--output", str(tmp_path / "sct.nii.gz"), "--model", str(tiny_model),
                 "--sampler", "ddim", "--steps", "1", "--mc", "1", "--quiet"]) == 0
    error = capsys.readouterr().err
    assert "warning: TE 12 ms, TR 550 ms: not a T2-weighted series" in error and "warning: body part HEAD" in error


def test_a_nifti_t2_has_no_header_to_warn_about(t2_sample):
    from MRItoCTLib.pipeline import check_mri

    assert check_mri(sitk.ReadImage(str(t2_sample))) == []


def test_slicer_node_loaded_from_dicom_is_checked_through_the_database(t1_head_series, mrml_scene):
    """The rule relied on: DICOMScalarVolumePlugin.py stores the loaded files' SOP instance UIDs, space-separated, in
    the node attribute "DICOM.instanceUIDs", and the database answers ``instanceValue(uid, "gggg,eeee")``
    (Docs/developer_guide/script_repository/dicom.md). Here the database lookup reads the same files."""
    from MRItoCTLib.slicer.nodes import dicom_header, input_warnings, open_dicom_database
    from MRItoCTLib.slicer.scenarios import add_volume_node

    folder, uids = t1_head_series
    files = {}
    for path in folder.iterdir():
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(path))
        reader.ReadImageInformation()
        files[reader.GetMetaData("0008|0018").strip()] = reader
    asked = []

    def instance_value(uid: str, tag: str) -> str:
        asked.append((uid, tag))
        reader, key = files[uid], tag.replace(",", "|")
        return reader.GetMetaData(key).strip() if reader.HasMetaDataKey(key) else ""

    node = add_volume_node(mrml_scene, sitk.ReadImage([str(p) for p in sorted(folder.iterdir())]), "T1 head")
    assert input_warnings(node, instance_value) == []  # not loaded from DICOM: nothing to look up
    node.SetAttribute("DICOM.instanceUIDs", " ".join(uids))
    assert dicom_header(node, instance_value)[BODY_PART] == "HEAD"
    assert {uid for uid, _ in asked} == {uids[0]} and all("," in tag for _, tag in asked)
    assert [w.split(":")[0] for w in input_warnings(node, instance_value)] == ["TE 12 ms, TR 550 ms", "body part HEAD"]
    assert open_dicom_database() is None  # slicer-core has no DICOM database: the panel then checks nothing
