"""The job contract between the Slicer panels and their background workers (CTSynthesisCore/jobs.py): typed
requests in ``job.json``, a typed result record out, no command-line text in between; and the command-line
flags built on the same settings dataclasses."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from CTSynthesisCore.errors import UserInputError
from CTSynthesisCore.jobs import JobResult, read_request, read_result, write_request, write_result


def full_synthesis_request():
    from MRItoCTLib.settings import SynthesisRequest, SynthesisSettings

    settings = SynthesisSettings(sampler="pc", steps=7, mc=3, seed=5, batch_size=2, keep_samples=True,
                                 sampler_options={"snr": 0.2, "corrector_steps": 2}, precision="bf16",
                                 channels_last=False, compile="default", context_only_edges=1)
    return SynthesisRequest(settings, model="mritoct-cnn", device="cpu")


def test_a_synthesis_request_survives_the_job_folder(tmp_path):
    from MRItoCTLib.settings import JOB_KIND, SynthesisRequest

    request = full_synthesis_request()
    write_request(tmp_path, JOB_KIND, request)
    assert read_request(tmp_path, JOB_KIND, SynthesisRequest) == request


def test_an_upsample_request_survives_the_job_folder(tmp_path):
    from SliceInterpLib.settings import JOB_KIND, UpsampleRequest, UpsampleSettings

    request = UpsampleRequest(UpsampleSettings(method="crossview", model="m", device="cpu", seed=3, adapt_minutes=1.5,
                                               batch_size=5, precision="fp16"), spacing=1.25, disagreement=True)
    write_request(tmp_path, JOB_KIND, request)
    assert read_request(tmp_path, JOB_KIND, UpsampleRequest) == request


@pytest.mark.parametrize("change, message", [
    (lambda record: record["request"]["settings"].update(mc="4"), "must be a int"),
    (lambda record: record["request"]["settings"].update(temperature=1.0), "unknown field"),
    (lambda record: record.update(format=99), "format"),
    (lambda record: record.update(kind="sliceinterp-upsample"), "not a mritoct-synthesis record"),
])
def test_a_wrong_job_file_is_refused_in_one_line(tmp_path, change, message):
    from MRItoCTLib.settings import JOB_KIND, SynthesisRequest

    path = write_request(tmp_path, JOB_KIND, full_synthesis_request())
    record = json.loads(path.read_text())
    change(record)
    path.write_text(json.dumps(record))
    with pytest.raises(UserInputError, match=message):
        read_request(tmp_path, JOB_KIND, SynthesisRequest)


def test_the_result_record_round_trips(tmp_path):
    result = JobResult({"ct": ["ct.mha"], "samples": []}, "ddpm, 10 NFE", ["looks like a CT"], 1.5, "cpu")
    write_result(tmp_path, "mritoct-synthesis", result)
    assert read_result(tmp_path, "mritoct-synthesis") == result


def test_the_command_line_builds_the_same_settings(tmp_path):
    """Every setting of the request has a flag, and the flags give back the same SynthesisSettings."""
    from MRItoCTLib.cli import build_parser, settings_from_arguments

    settings = full_synthesis_request().settings
    args = build_parser().parse_args(["synthesize", "in.nii.gz", "--output", "out.nii.gz", "--sampler", "pc",
                                      "--steps", "7", "--mc", "3", "--seed", "5", "--batch-size", "2", "--snr", "0.2",
                                      "--corrector-steps", "2", "--precision", "bf16", "--no-channels-last",
                                      "--compile", "default"])
    assert settings_from_arguments(args, keep_samples=True) == replace(settings, context_only_edges=0).validated()


def test_the_worker_writes_its_result_record(tmp_path, mrml_scene, tiny_model):
    """A real worker run: the request goes in as job.json, the result record names the outputs, summary and
    device; nothing is read from the worker's printed lines but progress and a failure's cause."""
    import SimpleITK as sitk

    from MRItoCTLib.settings import JOB_KIND, SynthesisRequest, SynthesisSettings
    from MRItoCTLib.jobs import main as worker_main
    from CTSynthesisCore.jobs import INPUT_FILE
    from CTSynthesisCore.sample_data import sample_path

    mri = sitk.ReadImage(str(sample_path("t2_pelvis")))
    size = mri.GetSize()
    sitk.WriteImage(mri[size[0] // 2 - 24:size[0] // 2 + 24, size[1] // 2 - 24:size[1] // 2 + 24, 8:11],
                    str(tmp_path / INPUT_FILE))
    request = SynthesisRequest(SynthesisSettings(sampler="ddim", steps=2, mc=2, keep_samples=True), str(tiny_model), "cpu")
    write_request(tmp_path, JOB_KIND, request)
    assert worker_main([str(tmp_path)]) == 0  # in this process: --worker would exit when stdin closes
    result = read_result(tmp_path, JOB_KIND)
    assert result.outputs["ct"] == ["ct.mha"] and result.outputs["uncertainty"] == ["uncertainty.mha"]
    assert len(result.outputs["samples"]) == 2 and all((tmp_path / name).is_file() for name in result.outputs["samples"])
    assert "NFE" in result.summary and result.device == "cpu" and result.seconds > 0
