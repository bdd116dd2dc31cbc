"""Background runs of the engines (the panels' path), dependency checks, sample-data registration."""

import hashlib
import time
import urllib.request

import pytest
import SimpleITK as sitk

from CTSynthesisCore.background import (
    BackgroundProcess,
    LineProgress,
    format_progress_line,
    parse_progress_line,
)
from CTSynthesisCore.errors import UserInputError


def test_progress_lines_round_trip():
    line = format_progress_line(3, 10, "slice batch\n 2 of 5")
    assert parse_progress_line(line + "\n") == (parse_progress_line(line))
    update = parse_progress_line(line)
    assert (update.done, update.total, update.message) == (3, 10, "slice batch 2 of 5")
    assert parse_progress_line("done: something") is None
    assert parse_progress_line("@progress x y") is None


def test_line_progress_prints_at_most_every_interval(capsys):
    progress = LineProgress(interval_s=60)
    for done in range(5):
        progress(done, 5, "working")
    progress(5, 5, "finished")
    lines = capsys.readouterr().out.splitlines()
    assert [parse_progress_line(line).done for line in lines] == [0, 5]


def test_worker_reports_progress_and_its_summary(tmp_path, ct_sample):
    output = tmp_path / "fine.nii.gz"
    process = BackgroundProcess("SliceInterpLib.cli", ["upsample", str(ct_sample), "--output", str(output),
                                                       "--factor", "2", "--method", "linear"],
                                ("SliceInterpLib", "CTSynthesisCore"))
    process.start()
    seen = []
    process.wait(progress=lambda done, total, message="": seen.append((done, total)))
    assert seen and seen[-1][0] == seen[-1][1], "the last report is the end of the work"
    assert any(line.startswith("done:") for line in process.messages)
    assert sitk.ReadImage(str(output)).GetSize()[2] == 2 * sitk.ReadImage(str(ct_sample)).GetSize()[2] - 1


def test_worker_error_becomes_one_user_error(tmp_path):
    process = BackgroundProcess("MRItoCTLib.cli", ["synthesize", str(tmp_path / "missing.nii.gz"),
                                                   "--output", str(tmp_path / "ct.nii.gz")],
                                ("MRItoCTLib", "CTSynthesisCore"))
    process.start()
    with pytest.raises(UserInputError, match="input not found") as raised:
        process.wait()
    assert "\n" not in str(raised.value) and not (tmp_path / "ct.nii.gz").exists()


def test_worker_exits_when_its_parent_goes_away(tmp_path, ct_sample):
    """Closing the worker's stdin is what happens when Slicer quits or crashes: the worker must stop."""
    process = BackgroundProcess("SliceInterpLib.cli", ["upsample", str(ct_sample), "--output", str(tmp_path / "o.mha"),
                                                       "--factor", "8", "--method", "crossview", "--device", "cpu"],
                                ("SliceInterpLib", "CTSynthesisCore"))
    process.start()
    process.wait_for_progress(timeout_s=120)
    process._process.stdin.close()
    process._process.wait(timeout=15)
    assert process._process.returncode == 130
    assert not list(tmp_path.iterdir()), "no partial output"


def test_poll_job_reports_progress_then_outcome_error_or_cancel(mrml_scene, ct_sample):
    from CTSynthesisCore.slicer.mrml import update_volume_node_from_image
    from CTSynthesisCore.slicer.node_job import poll_job
    from SliceInterpLib.slicer.nodes import UpsampleJob
    from SliceInterpLib.settings import UpsampleSettings

    ct = sitk.ReadImage(str(ct_sample))[40:90, 40:90, :]
    node = mrml_scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "CT")
    update_volume_node_from_image(node, ct)

    def run_to_end(job, cancel_early=False):
        job.start()
        while True:
            report = poll_job(job)
            if cancel_early and report.running:
                job.cancel()
            if not report.running:
                return report
            time.sleep(0.05)

    done = run_to_end(UpsampleJob(node, None, factor=2, settings=UpsampleSettings(method="linear", device="cpu")))
    assert done.outcome is not None and done.status.startswith("Done: ") and done.error is None
    failed = run_to_end(UpsampleJob(node, None, factor=9, settings=UpsampleSettings(method="linear", device="cpu")))
    assert failed.outcome is None and "factor" in failed.error and "\n" not in failed.status
    nodes = mrml_scene.GetNumberOfNodes()
    cancelled = run_to_end(UpsampleJob(node, None, factor=2, settings=UpsampleSettings(device="cpu")), cancel_early=True)
    assert cancelled.cancelled and cancelled.outcome is None and mrml_scene.GetNumberOfNodes() == nodes


def test_progress_status_shows_elapsed_and_estimate():
    from CTSynthesisCore.progress import progress_status

    assert progress_status(0, 10, "sampling", 3.2) == "sampling — 3 s elapsed"
    assert progress_status(5, 10, "sampling", 65) == "sampling — 1 min 05 s elapsed, about 1 min 05 s left"
    assert progress_status(10, 10, "", 7) == "7 s elapsed"


def test_dependencies_are_installed_only_after_the_user_agrees():
    from CTSynthesisCore.slicer.dependencies import REQUIREMENTS, Requirement, ensure_requirements

    asked, installed = [], []
    assert ensure_requirements(asked.append, lambda requirement: True, installed.append) == (
        True, "all required packages are installed")
    assert not asked and not installed, "nothing to ask when everything is there"
    needs = REQUIREMENTS + (Requirement("ctsynthesis_package_that_does_not_exist", "not-a-real-package", "0.1"),)
    ready, message = ensure_requirements(lambda question: asked.append(question) or False, lambda requirement: True,
                                         installed.append, needs)
    assert not ready and "not-a-real-package>=0.1" in asked[0] and not installed and "not installed" in message
    ready, message = ensure_requirements(lambda question: True, lambda requirement: True, installed.append, needs)
    assert installed == ["not-a-real-package>=0.1"] and not ready and "failed" in message


def test_torch_is_offered_through_the_pytorch_extension():
    from CTSynthesisCore.slicer.dependencies import Requirement, install_question

    assert "PyTorch extension" in install_question([(Requirement("torch", "torch", "2.8"), None)])


def test_sample_data_source_points_at_the_shipped_file_with_its_checksum():
    from CTSynthesisCore.slicer.sample_data import SAMPLES, sample_data_source

    source = sample_data_source("t2_pelvis")
    assert source["sampleName"] == "T2 pelvis (ProstateX)" and source["uris"].startswith("file://")
    with urllib.request.urlopen(source["uris"]) as handle:  # how Slicer's SampleData fetches it
        digest = hashlib.sha256(handle.read()).hexdigest()
    algorithm, expected = source["checksums"].split(":")
    assert algorithm == "SHA256" and digest == expected == SAMPLES["t2_pelvis"].sha256
    assert source["thumbnailFileName"] and source["thumbnailFileName"].endswith(".png")


def test_device_is_explained():
    from CTSynthesisCore.device import choose_device

    choice = choose_device("auto")
    assert choice.reason and (choice.device == "cuda") == ("GPU" in choice.reason)
    with pytest.raises(UserInputError):
        choose_device("tpu")


