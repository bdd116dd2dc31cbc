"""Batch mode of both CLIs: folders and list files of cases, a summary table, torchrun splitting."""

from __future__ import annotations

import csv
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from CTSynthesisCore.batch import Case, ProcessShare, batch_cases, summary_table
from CTSynthesisCore.errors import UserInputError


@pytest.fixture
def ct_cases(tmp_path, ct_sample) -> Path:
    """A folder with two CT volumes (one in a case subfolder, as SynthRAD lays them out) and a broken file."""
    ct = sitk.ReadImage(str(ct_sample))
    folder = tmp_path / "cases"
    (folder / "patient_b").mkdir(parents=True)
    sitk.WriteImage(ct[40:88, 40:88, 30:36], str(folder / "patient_a.nii.gz"))
    sitk.WriteImage(ct[60:108, 40:88, 30:35], str(folder / "patient_b" / "ct.nrrd"))
    (folder / "broken.nii.gz").write_bytes(b"not a volume")
    return folder


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def _summary(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_folder_cases_list_files_and_single_inputs(tmp_path, ct_cases, t2_sample):
    assert [(c.name, c.path.name) for c in batch_cases(ct_cases)] == [
        ("broken", "broken.nii.gz"), ("patient_a", "patient_a.nii.gz"), ("patient_b", "ct.nrrd")]
    listing = tmp_path / "cases.txt"
    listing.write_text(f"# two cases\ncases/patient_a.nii.gz\n\n{t2_sample}\ncases/patient_b\n", encoding="utf-8")
    assert [c.name for c in batch_cases(listing)] == ["patient_a", "prostatex0000_t2", "patient_b"]
    assert batch_cases(t2_sample) is None  # one volume file
    dicom = tmp_path / "series"
    dicom.mkdir()
    (dicom / "IM0001").write_bytes(b"DICM")
    assert batch_cases(dicom) is None  # a folder of DICOM files is one series
    (tmp_path / "missing.txt").write_text("nowhere.nii.gz\n", encoding="utf-8")
    with pytest.raises(UserInputError, match="1 input\\(s\\) not found, first .*nowhere.nii.gz"):
        batch_cases(tmp_path / "missing.txt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserInputError, match="no input volumes"):
        batch_cases(tmp_path / "empty")


def test_repeated_names_are_made_unique(tmp_path):
    for folder in ("x", "y"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "mr.nii.gz").write_bytes(b"")
    listing = tmp_path / "list.txt"
    listing.write_text("x/mr.nii.gz\ny/mr.nii.gz\n", encoding="utf-8")
    assert [c.name for c in batch_cases(listing)] == ["mr", "mr_2"]


def test_torchrun_share_takes_every_nth_case_and_its_own_gpu():
    cases = [Case(str(i), Path(str(i))) for i in range(5)]
    share = ProcessShare(rank=1, world_size=2, local_rank=1)
    assert [c.name for c in share.cases(cases)] == ["1", "3"]
    assert share.device("cpu") == "cpu"
    assert ProcessShare().device("auto") == "auto"


def test_summary_table_counts_failures():
    table = summary_table([{"case": "a", "status": "ok", "seconds": 1.0, "detail": "fine"},
                           {"case": "b", "status": "failed", "seconds": 0.0, "detail": "cannot read b"}])
    assert "| b | failed | 0.0 | cannot read b |" in table
    assert table.endswith("1 of 2 cases done, 1 failed")


def test_sliceinterp_folder_batch(tmp_path, ct_cases, capsys):
    from SliceInterpLib.cli import main

    before = _digest(ct_cases)
    code = main(["upsample", str(ct_cases), "--output", str(tmp_path / "out"), "--uncertainty", str(tmp_path / "spread"),
                 "--factor", "2", "--device", "cpu", "--quiet"])
    printed = capsys.readouterr().out
    assert code == 2  # one case failed, the others were written
    assert "2 of 3 cases done, 1 failed" in printed
    rows = _summary(tmp_path / "out" / "summary.csv")
    assert [(r["case"], r["status"]) for r in rows] == [("broken", "failed"), ("patient_a", "ok"), ("patient_b", "ok")]
    assert "cannot read" in rows[0]["detail"]
    for name, slices in (("patient_a", 6), ("patient_b", 5)):
        source = sitk.ReadImage(str(next(c.path for c in batch_cases(ct_cases) if c.name == name)))
        output = sitk.ReadImage(str(tmp_path / "out" / f"{name}.nii.gz"))
        assert output.GetSize() == (48, 48, 2 * slices - 1)
        assert output.GetOrigin() == pytest.approx(source.GetOrigin())
        assert output.GetSpacing() == pytest.approx((*source.GetSpacing()[:2], source.GetSpacing()[2] / 2))
        assert (tmp_path / "spread" / f"{name}.nii.gz").is_file()
    assert not (tmp_path / "out" / "broken.nii.gz").exists()
    assert _digest(ct_cases) == before


@pytest.mark.parametrize("arguments, message", [
    (["--output", "{tmp}/out.nii.gz"], "are folders (no extension)"),
    (["--output", "{tmp}/same", "--uncertainty", "{tmp}/same"], "must be different folders"),
    (["--output", "/proc/out"], "cannot create output folder /proc/out"),
])
def test_batch_output_errors_are_one_line(tmp_path, ct_cases, capsys, arguments, message):
    from SliceInterpLib.cli import main

    code = main(["upsample", str(ct_cases), "--factor", "2", "--device", "cpu", "--quiet",
                 *[a.format(tmp=tmp_path) for a in arguments]])
    error = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(error) == 1 and message in error[0], error


def test_batch_never_overwrites_an_input(tmp_path, ct_cases, capsys):
    from SliceInterpLib.cli import main

    before = _digest(ct_cases)
    code = main(["upsample", str(ct_cases), "--output", str(ct_cases), "--factor", "2", "--device", "cpu", "--quiet"])
    rows = _summary(ct_cases / "summary.csv")
    assert code == 2
    assert next(r for r in rows if r["case"] == "patient_a")["detail"].startswith("output ")
    after = _digest(ct_cases)
    assert {name: after[name] for name in before} == before  # patient_b's new output is beside, not over, an input


def test_mritoct_list_file_batch_with_samples(tmp_path, t2_sample, tiny_model, capsys):
    from MRItoCTLib.cli import main

    t2 = sitk.ReadImage(str(t2_sample))
    sitk.WriteImage(t2[:, :, 8:11], str(tmp_path / "first.nii.gz"))
    sitk.WriteImage(t2[:, :, 12:14], str(tmp_path / "second.mha"))
    (tmp_path / "cases.txt").write_text("first.nii.gz\nsecond.mha\n", encoding="utf-8")
    code = main(["synthesize", str(tmp_path / "cases.txt"), "--output", str(tmp_path / "ct"), "--uncertainty",
                 str(tmp_path / "std"), "--samples-dir", str(tmp_path / "samples"), "--model", str(tiny_model),
                 "--sampler", "ddim", "--steps", "2", "--mc", "2", "--device", "cpu", "--quiet"])
    assert code == 0, capsys.readouterr().err
    assert "2 of 2 cases done" in capsys.readouterr().out
    for name, slices in (("first", 3), ("second", 2)):
        ct = sitk.ReadImage(str(tmp_path / "ct" / f"{name}.nii.gz"))
        assert ct.GetSize() == (384, 384, slices)
        assert (tmp_path / "std" / f"{name}.nii.gz").is_file()
        assert len(list((tmp_path / "samples" / name).glob("sample_*.nii.gz"))) == 2


def test_mritoct_batch_under_torchrun_splits_cases(tmp_path, t2_sample, tiny_model):
    """Two processes (gloo, CPU): each synthesizes its share, process 0 prints one summary of all cases, and each
    output equals the single-process result."""
    t2 = sitk.ReadImage(str(t2_sample))
    cases = tmp_path / "cases"
    cases.mkdir()
    for index in range(3):
        sitk.WriteImage(t2[:, :, 6 + 3 * index: 8 + 3 * index], str(cases / f"case_{index}.nii.gz"))
    common = ["--model", str(tiny_model), "--sampler", "ddim", "--steps", "2", "--mc", "2", "--device", "cpu", "--quiet"]
    torchrun = Path(sys.executable).parent / "torchrun"
    run = subprocess.run([str(torchrun), "--nproc_per_node", "2", "-m", "MRItoCTLib.cli", "synthesize", str(cases),
                          "--output", str(tmp_path / "parallel"), *common],
                         capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.count("| case_") == 3 and "3 of 3 cases done" in run.stdout
    rows = _summary(tmp_path / "parallel" / "summary.csv")
    assert [r["case"] for r in rows] == ["case_0", "case_1", "case_2"]
    from MRItoCTLib.cli import main

    assert main(["synthesize", str(cases), "--output", str(tmp_path / "single"), *common]) == 0
    for index in range(3):
        parallel, single = (sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / f / f"case_{index}.nii.gz")))
                            for f in ("parallel", "single"))
        np.testing.assert_allclose(parallel, single, atol=0.5)
