"""Reliability matrix: bad inputs and faults against both command-line tools and both modules' Logic
(their node-level functions, under slicer-core). The table in docs/reliability.md is generated from
CASES below; ``python Testing/test_reliability.py`` rewrites it and a test checks it has not drifted.
"""

from __future__ import annotations

import csv
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from volume_files import read_volume_node, write_nifti

REPO = Path(__file__).resolve().parent.parent
TABLE = REPO / "docs" / "reliability.md"
OK = "ok"


@dataclass(frozen=True)
class Case:
    name: str
    what: str
    mritoct: str  # "ok", "warning: <text>", "error: <text>" (the one error line contains <text>), or "" (n/a)
    sliceinterp: str
    logic: bool = True  # also run against the node-level Logic of both modules


CASES = [
    Case("missing", "input file does not exist", "error: input not found", "error: input not found", False),
    Case("truncated", "truncated .nii.gz", "error: cannot read", "error: cannot read", False),
    Case("text", "text file with a .nii.gz extension", "error: cannot read", "error: cannot read", False),
    Case("2d", "2D image", "error: must be a 3D volume", "error: must be a 3D volume", False),
    Case("4d", "4D image", "error: must be a 3D volume", "error: must be a 3D volume", False),
    Case("vector", "vector (2 components per voxel)", "error: scalar volume", "error: scalar volume"),
    Case("zero_size", "zero-size volume", "error: empty", "error: empty"),
    Case("constant", "constant image", "error: constant", OK),
    Case("all_nan", "every voxel NaN", "error: NaN or infinite", "error: NaN or infinite"),
    Case("some_nan", "one NaN voxel", "error: NaN or infinite", "error: NaN or infinite"),
    Case("inf", "one +Inf voxel", "error: NaN or infinite", "error: NaN or infinite"),
    Case("extreme", "values up to 1e30", "error: extreme values", "error: extreme values"),
    Case("nifti_nan", "NIfTI (.nii.gz, 32-bit float) with one NaN voxel", "error: NaN or infinite",
         "error: NaN or infinite"),
    Case("nifti_inf", "NIfTI (.nii, 64-bit float) with a +Inf and a -Inf voxel", "error: NaN or infinite",
         "error: NaN or infinite"),
    Case("nifti_scaling", "NIfTI with scl_slope 0 and scl_inter 5 (ITK would add 5, the standard says unscaled)",
         "error: ambiguous intensity scaling", "error: ambiguous intensity scaling"),
    Case("nifti_uint16", "NIfTI of 16-bit unsigned integers with scl_inter -1024 (HU stored with an offset)", OK, OK),
    Case("uint8", "8-bit unsigned integers", OK, OK),
    Case("int16", "16-bit signed integers", OK, OK),
    Case("float64", "64-bit floats", OK, OK),
    Case("huge", "header claims 20000 x 20000 x 3000 voxels", "error: over the limit", "error: over the limit", False),
    Case("memory_limit", "volume larger than the memory limit (CTSYNTHESIS_MEMORY_LIMIT_MB=0.01)",
         "error: over the limit", "error: over the limit"),
    Case("oblique", "oblique direction, anisotropic spacing", OK, OK),
    Case("odd_size", "odd, non-square size 37 x 23 x 5", OK, OK),
    Case("one_slice", "a single slice", OK, "error: at least 3"),
    Case("two_slices", "two slices", OK, "error: at least 3"),
    Case("ct_to_mritoct", "a CT given to MRItoCT", "warning: looks like a CT", ""),
    Case("weights_missing", "model folder without its weights file", "error: weights file missing",
         "error: weights file missing"),
    Case("weights_truncated", "weights file cut in half", "error: corrupt or was changed", "error: corrupt or was changed"),
    Case("weights_changed", "weights file with changed bytes (checksum mismatch)", "error: corrupt or was changed",
         "error: corrupt or was changed"),
    Case("cuda_unusable", "CUDA requested where it cannot run", "error: CUDA was requested", "error: CUDA was requested"),
    Case("out_of_memory", "out-of-memory (simulated, CTSYNTHESIS_SIMULATE_OOM_ABOVE=1)",
         "warning: retried with", "warning: retried with"),
    Case("output_readonly", "output folder not writable", "error: not writable", "error: not writable", False),
    Case("output_missing_folder", "output folder does not exist", "error: does not exist", "error: does not exist",
         False),
    Case("output_is_input", "output path equal to the input", "error: the input", "error: the input"),
]
CASE = {case.name: case for case in CASES}
TOOLS = ("mritoct", "sliceinterp")
NETWORK_CASES = {"weights_missing", "weights_truncated", "weights_changed", "cuda_unusable", "out_of_memory"}
NIFTI_CASES = {  # case -> file name, stored voxel type, voxels set to a value (z, y, x), (scl_slope, scl_inter)
    "nifti_nan": ("nifti_nan.nii.gz", np.float32, {(1, 3, 3): np.nan}, (1.0, 0.0)),
    "nifti_inf": ("nifti_inf.nii", np.float64, {(1, 3, 3): np.inf, (0, 2, 2): -np.inf}, (1.0, 0.0)),
    "nifti_scaling": ("nifti_scaling.nii.gz", np.int16, {}, (0.0, 5.0)),
    "nifti_uint16": ("nifti_uint16.nii.gz", np.uint16, {}, (1.0, -1024.0)),
}


def expectation(case: Case, tool: str) -> str:
    return case.mritoct if tool == "mritoct" else case.sliceinterp


# --------------------------------------------------------------------------- inputs


@pytest.fixture(scope="module")
def bases(t2_sample, ct_sample) -> dict[str, sitk.Image]:
    """Small real crops: a T2 block for MRItoCT, a CT block for SliceInterp."""
    return {"mritoct": sitk.ReadImage(str(t2_sample))[160:224, 160:224, 8:12],
            "sliceinterp": sitk.ReadImage(str(ct_sample))[40:104, 40:104, 20:26]}


def case_image(name: str, base: sitk.Image, ct: sitk.Image) -> sitk.Image:
    """The in-memory volume of a case (for the cases that are an image)."""
    array = sitk.GetArrayFromImage(base).astype(np.float32)
    if name == "vector":
        return sitk.Compose(base, base)
    if name == "constant":
        image = sitk.GetImageFromArray(np.full_like(array, 7.0))
    elif name in {"all_nan", "some_nan", "inf", "extreme"}:
        values = {"all_nan": np.nan, "some_nan": np.nan, "inf": np.inf, "extreme": 1e30}[name]
        if name == "all_nan":
            array[:] = values
        else:
            array[1, 3, 3] = values
        image = sitk.GetImageFromArray(array)
    elif name in {"uint8", "int16", "float64"}:
        scaled = (array - array.min()) / max(float(np.ptp(array)), 1.0) * 250 if name == "uint8" else array
        image = sitk.GetImageFromArray(scaled.astype({"uint8": np.uint8, "int16": np.int16, "float64": np.float64}[name]))
    elif name == "odd_size":
        return base[:37, :23, :]
    elif name == "one_slice":
        return base[:, :, :1]
    elif name == "two_slices":
        return base[:, :, :2]
    elif name == "ct_to_mritoct":
        return ct
    else:
        return sitk.Image(base)
    image.CopyInformation(base)
    return image


def write_nifti_case(name: str, folder: Path, base: sitk.Image) -> Path:
    """The NIfTI file of a case, written by the tests' own writer (which keeps NaN and Inf voxels)."""
    file_name, dtype, voxels, (slope, inter) = NIFTI_CASES[name]
    array = sitk.GetArrayFromImage(base).astype(np.float64) - inter  # stored value = (value - scl_inter) / 1
    if np.issubdtype(dtype, np.integer):
        array = np.clip(np.round(array), np.iinfo(dtype).min, np.iinfo(dtype).max)
    for index, value in voxels.items():
        array[index] = value
    return write_nifti(folder / file_name, array.astype(dtype), base.GetSpacing(), (slope, inter))


def write_case_file(name: str, folder: Path, base: sitk.Image, ct: sitk.Image, make_oblique) -> Path:
    """The input file of a case."""
    path = folder / f"{name}.mha"  # MetaImage keeps NaN voxels
    if name in NIFTI_CASES:
        return write_nifti_case(name, folder, base)
    if name == "missing":
        return folder / "missing.nii.gz"
    if name == "truncated":
        whole = folder / "whole.nii.gz"
        sitk.WriteImage(base, str(whole), True)
        path = folder / "truncated.nii.gz"
        path.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
        whole.unlink()
        return path
    if name == "text":
        path = folder / "text.nii.gz"
        path.write_text("this is not an image", encoding="utf-8")
        return path
    if name == "2d":
        sitk.WriteImage(base[:, :, 0], str(path))
    elif name == "4d":
        sitk.WriteImage(sitk.JoinSeries([base, base]), str(path))
    elif name in {"zero_size", "huge"}:
        size = "0 8 8" if name == "zero_size" else "20000 20000 3000"
        path.write_text(f"ObjectType = Image\nNDims = 3\nDimSize = {size}\nElementType = MET_FLOAT\n"
                        "ElementDataFile = LOCAL\n", encoding="utf-8")
    elif name == "oblique":
        sitk.WriteImage(make_oblique(base), str(path))
    else:
        sitk.WriteImage(case_image(name, base, ct), str(path))
    return path


def broken_model(kind: str, source: str, folder: Path) -> str:
    target = folder / f"model-{kind}"
    shutil.copytree(source, target)
    weights = next(p for p in target.iterdir() if p.suffix in {".pt", ".pth"})
    if kind == "weights_missing":
        weights.unlink()
    elif kind == "weights_truncated":
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    else:
        data = bytearray(weights.read_bytes())
        data[len(data) // 2: len(data) // 2 + 4] = b"\x00\x01\x02\x03"
        weights.write_bytes(bytes(data))
    return str(target)


def cuda_usable() -> bool:
    from CTSynthesisCore.device import cuda_status

    return cuda_status()[0]


def digest(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


# --------------------------------------------------------------------------- command-line matrix


def cli_arguments(tool: str, case: str, source: Path, output: Path, models: dict[str, str], work: Path) -> list[str]:
    network = case in NETWORK_CASES
    model = broken_model(case, models[tool], work) if case.startswith("weights_") else models[tool]
    device = ["--device", "cuda"] if case == "cuda_unusable" else ["--device", "cpu"]
    if tool == "mritoct":
        return ["synthesize", str(source), "--output", str(output), "--model", model, "--sampler", "ddim",
                "--steps", "1", "--mc", "2", "--quiet", *device]
    method = ["--method", "crossview", "--model", model] if network else ["--method", "linear"]
    return ["upsample", str(source), "--output", str(output), "--factor", "2", "--quiet", *method, *device]


@pytest.mark.parametrize("tool,case", [(tool, case.name) for case in CASES for tool in TOOLS
                                       if expectation(case, tool)])
def test_cli_matrix(tool, case, tmp_path, bases, tiny_model, tiny_crossview_model, ct_sample, make_oblique, capsys,
                    monkeypatch):
    """Each case: one ``error:`` line and exit 2, or success (with its warning); the input never changes and
    nothing is left behind on error."""
    from MRItoCTLib.cli import main as mritoct_main
    from SliceInterpLib.cli import main as sliceinterp_main

    expected = expectation(CASE[case], tool)
    if case == "cuda_unusable" and cuda_usable():
        pytest.skip("CUDA is usable on this machine")
    inputs, outputs = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    outputs.mkdir()
    source = write_case_file(case, inputs, bases[tool], sitk.ReadImage(str(ct_sample))[100:164, 100:164, 20:24],
                             make_oblique)
    output = outputs / "result.nii.gz"
    if case == "output_readonly":
        output = (Path("/proc") if os.geteuid() == 0 else outputs) / "result.nii.gz"
        if os.geteuid() != 0:
            outputs.chmod(0o500)
    elif case == "output_missing_folder":
        output = outputs / "no" / "result.nii.gz"
    elif case == "output_is_input":
        output = source
    if case == "memory_limit":
        monkeypatch.setenv("CTSYNTHESIS_MEMORY_LIMIT_MB", "0.01")
    if case == "out_of_memory":
        monkeypatch.setenv("CTSYNTHESIS_SIMULATE_OOM_ABOVE", "1")
    before = {p: digest(p) for p in inputs.rglob("*")}
    main = mritoct_main if tool == "mritoct" else sliceinterp_main
    code = main(cli_arguments(tool, case, source, output, {"mritoct": str(tiny_model), "sliceinterp": tiny_crossview_model},
                              tmp_path))
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    outputs.chmod(0o700)
    assert {p: digest(p) for p in inputs.rglob("*")} == before, "the input must not change"
    assert "Traceback" not in "\n".join(err)
    if expected.startswith("error:"):
        assert code == 2, err
        assert len(err) == 1 and err[0].startswith("error:") and expected.removeprefix("error:").strip() in err[0], err
        assert not [p for p in outputs.rglob("*") if p.is_file()], "no output on error"
    else:
        assert code == 0, err
        assert output.is_file() and not [p for p in outputs.iterdir() if p.name.startswith(".partial")]
        if expected.startswith("warning:"):
            assert any(line.startswith("warning:") and expected.removeprefix("warning:").strip() in line
                       for line in err), err
        written = sitk.ReadImage(str(output))
        reference = sitk.ReadImage(str(source))
        if tool == "mritoct":
            assert written.GetSize() == reference.GetSize()
            np.testing.assert_allclose(written.GetDirection(), reference.GetDirection(), atol=1e-6)
        else:
            assert written.GetSize()[2] == 2 * reference.GetSize()[2] - 1


# --------------------------------------------------------------------------- Logic (node-level) matrix


def logic_run(tool: str, case: str, scene, input_node, output_node, models: dict[str, str], work: Path):
    from CTSynthesisCore.errors import UserInputError

    network = case in NETWORK_CASES
    model = broken_model(case, models[tool], work) if case.startswith("weights_") else models[tool]
    device = "cuda" if case == "cuda_unusable" else "cpu"
    if tool == "mritoct":
        from MRItoCTLib.slicer.nodes import synthesize_nodes
        from MRItoCTLib.settings import SynthesisSettings

        target = input_node if case == "output_is_input" else output_node
        return synthesize_nodes(input_node, target, None, SynthesisSettings(sampler="ddim", steps=1, mc=2),
                                model=model, device=device)
    from SliceInterpLib.slicer.nodes import upsample_nodes
    from SliceInterpLib.settings import UpsampleSettings

    settings = UpsampleSettings(method="crossview" if network else "linear", model=model if network else None,
                                device=device)
    target = input_node if case == "output_is_input" else output_node
    if target is None:
        raise UserInputError("no output node")
    return upsample_nodes(input_node, target, factor=2, settings=settings)


@pytest.mark.parametrize("tool,case", [(tool, case.name) for case in CASES for tool in TOOLS
                                       if case.logic and expectation(case, tool)])
def test_logic_matrix(tool, case, mrml_scene, tmp_path, bases, tiny_model, tiny_crossview_model, ct_sample,
                      make_oblique, monkeypatch):
    """The same cases through the modules' node-level Logic: a one-line UserInputError, input node unchanged
    and output node left empty; or a filled output node (with its warning)."""
    import slicer

    from CTSynthesisCore.errors import UserInputError
    from CTSynthesisCore.slicer.mrml import image_from_volume_node, update_volume_node_from_image

    expected = expectation(CASE[case], tool)
    if case == "cuda_unusable" and cuda_usable():
        pytest.skip("CUDA is usable on this machine")
    ct = sitk.ReadImage(str(ct_sample))[100:164, 100:164, 20:24]
    if case == "vector":
        input_node = mrml_scene.AddNewNodeByClass("vtkMRMLVectorVolumeNode", "input")
        slicer.util.updateVolumeFromArray(input_node, np.zeros((4, 8, 8, 2), np.float32))
    elif case == "zero_size":
        input_node = mrml_scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "input")  # holds no image data
    elif case in NIFTI_CASES:
        input_node = read_volume_node(mrml_scene, write_nifti_case(case, tmp_path, bases[tool]))
    else:
        image = make_oblique(bases[tool]) if case == "oblique" else case_image(case, bases[tool], ct)
        input_node = mrml_scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "input")
        update_volume_node_from_image(input_node, image)
    before = slicer.util.arrayFromVolume(input_node).copy() if input_node.GetImageData() else None
    output_node = mrml_scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "output")
    if case == "memory_limit":
        monkeypatch.setenv("CTSYNTHESIS_MEMORY_LIMIT_MB", "0.01")
    if case == "out_of_memory":
        monkeypatch.setenv("CTSYNTHESIS_SIMULATE_OOM_ABOVE", "1")
    models = {"mritoct": str(tiny_model), "sliceinterp": tiny_crossview_model}
    if expected.startswith("error:"):
        with pytest.raises(UserInputError) as raised:
            logic_run(tool, case, mrml_scene, input_node, output_node, models, tmp_path)
        message = str(raised.value)
        assert "\n" not in message and expected.removeprefix("error:").strip() in message, message
        assert output_node.GetImageData() is None, "the output node must stay empty"
    else:
        result = logic_run(tool, case, mrml_scene, input_node, output_node, models, tmp_path)
        assert output_node.GetImageData() is not None
        if expected.startswith("warning:"):
            assert any(expected.removeprefix("warning:").strip() in text for text in result.warnings), result.warnings
        output = image_from_volume_node(output_node)
        source = image_from_volume_node(input_node)
        np.testing.assert_allclose(output.GetDirection(), source.GetDirection(), atol=1e-6)
        np.testing.assert_allclose(output.GetOrigin(), source.GetOrigin(), atol=1e-5)
    if before is not None:
        assert np.array_equal(slicer.util.arrayFromVolume(input_node), before, equal_nan=True), "input node changed"


@pytest.mark.parametrize("tool,case", [(tool, case) for case in ("nifti_nan", "nifti_inf", "nifti_scaling")
                                       for tool in TOOLS])
def test_background_jobs_refuse_a_nifti_node_before_starting(tool, case, mrml_scene, tmp_path, bases, monkeypatch):
    """The panel's path: a node Slicer read from a NIfTI file with NaN/Inf voxels (which its reader turned into 0)
    or an ambiguous scaling is refused with one line before a worker starts; no temporary folder, no new node."""
    import tempfile

    from CTSynthesisCore.errors import UserInputError
    from MRItoCTLib.slicer.nodes import SynthesisJob
    from MRItoCTLib.settings import SynthesisSettings
    from SliceInterpLib.slicer.nodes import UpsampleJob
    from SliceInterpLib.settings import UpsampleSettings

    jobs = tmp_path / "jobs"
    jobs.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(jobs))
    input_node = read_volume_node(mrml_scene, write_nifti_case(case, tmp_path, bases[tool]))
    nodes = mrml_scene.GetNumberOfNodes()
    with pytest.raises(UserInputError) as raised:
        if tool == "mritoct":
            SynthesisJob(input_node, None, None, SynthesisSettings(sampler="ddim", steps=1, mc=2), device="cpu")
        else:
            UpsampleJob(input_node, None, factor=2, settings=UpsampleSettings(method="linear", device="cpu"))
    message = str(raised.value)
    assert expectation(CASE[case], tool).removeprefix("error:").strip() in message and "\n" not in message, message
    assert not list(jobs.iterdir()) and mrml_scene.GetNumberOfNodes() == nodes


@pytest.mark.parametrize("tool", TOOLS)
def test_batch_fails_only_the_nifti_cases_with_nan_or_inf(tool, tmp_path, bases, tiny_model, tiny_crossview_model,
                                                          capsys):
    """Batch mode: each NIfTI case with NaN/Inf voxels fails with the one-line error in the summary, the other
    case is written, and the exit code is 2."""
    from MRItoCTLib.cli import main as mritoct_main
    from SliceInterpLib.cli import main as sliceinterp_main

    folder, output = tmp_path / "cases", tmp_path / "out"
    folder.mkdir()
    for case in ("nifti_nan", "nifti_inf", "nifti_uint16"):
        write_nifti_case(case, folder, bases[tool])
    main = mritoct_main if tool == "mritoct" else sliceinterp_main
    code = main(cli_arguments(tool, "batch", folder, output, {"mritoct": str(tiny_model),
                                                              "sliceinterp": tiny_crossview_model}, tmp_path))
    with open(output / "summary.csv", encoding="utf-8") as handle:
        rows = {row["case"]: row for row in csv.DictReader(handle)}
    assert code == 2, capsys.readouterr()
    assert {case: row["status"] for case, row in rows.items()} == {
        "nifti_nan": "failed", "nifti_inf": "failed", "nifti_uint16": "ok"}
    assert all("NaN or infinite voxel(s)" in rows[case]["detail"] for case in ("nifti_nan", "nifti_inf")), rows
    assert sorted(p.name for p in output.glob("*.nii.gz")) == ["nifti_uint16.nii.gz"]


def test_logic_refuses_a_missing_input_node(mrml_scene):
    from CTSynthesisCore.errors import UserInputError
    from MRItoCTLib.slicer.nodes import synthesize_nodes
    from MRItoCTLib.settings import SynthesisSettings
    from SliceInterpLib.slicer.nodes import upsample_nodes

    output = mrml_scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "out")
    with pytest.raises(UserInputError, match="select an input"):
        synthesize_nodes(None, output, None, SynthesisSettings())
    with pytest.raises(UserInputError, match="select an input"):
        upsample_nodes(None, output, factor=2)


# --------------------------------------------------------------------------- Ctrl-C, determinism


@pytest.mark.parametrize("tool", TOOLS)
def test_ctrl_c_exits_130_with_no_partial_output(tool, tmp_path, t2_sample, ct_sample, tiny_model):
    """SIGINT in the middle of a run: exit 130, one line, no output file (not even a partial one)."""
    output = tmp_path / "result.nii.gz"
    if tool == "mritoct":
        command = ["mritoct", "synthesize", str(t2_sample), "--output", str(output), "--model", str(tiny_model),
                   "--sampler", "ddpm", "--steps", "1000", "--mc", "4", "--device", "cpu", "--worker"]
    else:
        command = ["sliceinterp", "upsample", str(ct_sample), "--output", str(output), "--factor", "8",
                   "--method", "crossview", "--device", "cpu", "--worker"]
    script = Path(sys.executable).parent / command[0]
    process = subprocess.Popen([str(script), *command[1:]], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    for line in process.stdout:  # wait until the work has really started
        if line.startswith("@progress") or time.monotonic() > deadline:
            break
    process.send_signal(signal.SIGINT)
    process.stdout.read()  # to the end: the child exits; its stdin stays open (closing it also stops a worker)
    process.wait(timeout=60)
    err = process.stderr.read()
    process.stdin.close()
    assert process.returncode == 130, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines[-1] == "error: cancelled; no output was written" and "Traceback" not in err
    assert not list(tmp_path.iterdir()), "no output or partial file may remain"


@pytest.mark.parametrize("tool", TOOLS)
def test_same_seed_same_bytes_on_cpu(tool, tmp_path, bases, tiny_model, tiny_crossview_model):
    """Two runs with the same seed give bit-identical volumes on CPU (MRItoCT: stochastic sampler and
    Monte Carlo; SliceInterp: the cross-view network). Test-time adaptation (--adapt) runs for a time budget,
    so its number of steps, and hence its result, can differ between runs."""
    from MRItoCTLib.cli import main as mritoct_main
    from SliceInterpLib.cli import main as sliceinterp_main

    source = tmp_path / "in.mha"
    sitk.WriteImage(bases[tool], str(source))
    results = []
    for run in range(2):
        output = tmp_path / f"run{run}.mha"
        if tool == "mritoct":
            code = mritoct_main(["synthesize", str(source), "--output", str(output), "--model", str(tiny_model),
                                 "--sampler", "ddpm", "--steps", "3", "--mc", "2", "--seed", "7", "--device", "cpu",
                                 "--quiet"])
        else:
            code = sliceinterp_main(["upsample", str(source), "--output", str(output), "--factor", "2", "--model",
                                     tiny_crossview_model, "--seed", "7",
                                     "--device", "cpu", "--quiet"])
        assert code == 0
        results.append(sitk.GetArrayFromImage(sitk.ReadImage(str(output))))
    assert np.array_equal(results[0], results[1])


# --------------------------------------------------------------------------- the table in the docs

EXTRA_ROWS = [
    ("Ctrl-C during a CLI run", "exit 130, `error: cancelled; no output was written`, no partial file",
     "test_ctrl_c_exits_130_with_no_partial_output"),
    ("Cancel in the panel (background worker)", "worker process group ended, temporary files removed, scene unchanged",
     "test_cancel_ends_the_worker_and_leaves_the_scene_unchanged, test_cancel_ends_the_worker_and_adds_no_node"),
    ("Slicer quits while a worker runs", "the worker exits when its stdin closes (no orphan)",
     "test_worker_exits_when_its_parent_goes_away"),
    ("no input node selected", "`select an input ...` (Logic)", "test_logic_refuses_a_missing_input_node"),
    ("same seed twice (CPU)", "bit-identical output", "test_same_seed_same_bytes_on_cpu"),
    ("NIfTI node with NaN/Inf voxels or an ambiguous scaling, run in the background (panel)",
     "one-line error before a worker starts; no temporary folder, no new node",
     "test_background_jobs_refuse_a_nifti_node_before_starting"),
    ("batch with NIfTI cases holding NaN/Inf voxels", "those cases fail with their `NaN or infinite` line in the "
     "summary, the others are written; exit 2", "test_batch_fails_only_the_nifti_cases_with_nan_or_inf"),
    ("NaN/Inf in every NIfTI layout (.nii, .nii.gz, .hdr/.img pair, big-endian, Analyze 7.5)",
     "found in the file (SimpleITK and Slicer read them as 0); `NaN or infinite` error (NIfTI-2 headers are "
     "parsed too, but SimpleITK 2.5.7 cannot read NIfTI-2: `cannot read`)",
     "test_nonfinite_voxels_are_found_in_every_nifti_layout, test_simpleitk_and_slicer_read_nifti_nan_and_inf_as_zero"),
    ("NIfTI scaling that ITK applies differently from the standard (zero or non-finite scl_slope with a scl_inter, "
     "or a non-finite scl_inter)", "`ambiguous intensity scaling` error; nibabel's NaN/NaN (no scaling) is accepted",
     "test_ambiguous_nifti_scaling_is_refused"),
    ("DICOM series whose slices have different rescale slopes", "read as 64-bit float, each slice with its own "
     "rescale (SimpleITK alone truncates to the first slice's integer type)",
     "test_dicom_series_with_per_slice_rescale_is_read_as_float"),
]


READING_NOTES = [
    "## Reading without silent changes", "",
    "SimpleITK's NIfTI reader (2.5.7), and so Slicer's volume loading, replaces NaN and +/-Inf voxels by 0",
    "while reading, without a message. NIfTI inputs (.nii, .nii.gz, .hdr/.img) are therefore checked in the",
    "file itself (`CTSynthesisCore/nifti_check.py`: the header, then the float data block streamed in chunks)",
    "before SimpleITK reads them, by the CLIs, batch mode and training/evaluation (`read_volume`), and, for a",
    "node whose storage node names a NIfTI file, by both modules' Logic and background jobs",
    "(`image_from_volume_node`). Such a node is refused until the fixed volume is saved. NRRD and MetaImage",
    "keep NaN and Inf, which `check_scalar_volume` refuses after reading.", "",
    "Also checked: SimpleITK applies a NIfTI scaling exactly (16-bit unsigned integers with scl_inter -1024",
    "read as 32-bit float, no overflow), but a zero or non-finite scl_slope beside a non-zero scl_inter, or a",
    "non-finite scl_inter beside a valid slope, is applied differently from the NIfTI standard and nibabel, so",
    "it is refused. DICOM rescale slope and intercept are applied by GDCM into a type wide enough (uint16 with",
    "intercept -1024 reads as 32-bit integers, a slope of 0.5 as 64-bit float), except that a series takes the",
    "first slice's type: a series whose slices have different rescale values is read as 64-bit float. NRRD has",
    "no scaling fields (`oldmin`/`oldmax` are informational and not applied); MetaImage's",
    "`ElementToIntensityFunctionSlope/Offset` are ignored by ITK (and by Slicer) and are not checked.", "",
]


def behaviour(text: str) -> str:
    if not text:
        return "n/a"
    if text == OK:
        return "runs; output on the expected grid"
    kind, _, fragment = text.partition(":")
    fragment = fragment.strip()
    if kind == "warning":
        return f"runs, with a `warning:` line containing \"{fragment}\""
    return "exit 2, one `error:` line" + (f" containing \"{fragment}\"" if fragment else "")


def render_table() -> str:
    lines = ["# Reliability matrix", "",
             "Generated from `Testing/test_reliability.py` (`python Testing/test_reliability.py` rewrites it; a test",
             "fails when it drifts). Every case runs against the `mritoct synthesize` and `sliceinterp upsample`",
             "command lines (`test_cli_matrix[tool-case]`) and, where marked, against both modules' node-level Logic",
             "under slicer-core (`test_logic_matrix[tool-case]`), where an error is a one-line `UserInputError`",
             "(shown by the panel in an error dialog) and the output node stays empty. In every case the input",
             "file or node is unchanged, and on error no output file is left. The NIfTI cases are written by the",
             "tests' own writer, which keeps NaN and Inf, and their Logic node is read from that file by Slicer's",
             "volume storage node, as Slicer loads it.", "",
             "| case | mritoct synthesize | sliceinterp upsample | Logic | tests |", "|---|---|---|---|---|"]
    for case in CASES:
        tests = [f"test_cli_matrix[{tool}-{case.name}]" for tool in TOOLS if expectation(case, tool)]
        if case.logic:
            tests += [f"test_logic_matrix[{tool}-{case.name}]" for tool in TOOLS if expectation(case, tool)]
        lines.append(f"| {case.what} | {behaviour(case.mritoct)} | {behaviour(case.sliceinterp)} | "
                     f"{'yes' if case.logic else 'file only'} | {'<br>'.join(f'`{t}`' for t in tests)} |")
    lines += ["", "| other case | behaviour | tests |", "|---|---|---|"]
    lines += [f"| {what} | {how} | {', '.join(f'`{t.strip()}`' for t in tests.split(','))} |"
              for what, how, tests in EXTRA_ROWS]
    lines += ["", "GPU determinism: on CUDA, cuDNN kernel choices make repeated runs differ by floating-point",
              "rounding; no GPU was available to measure the tolerance, so no GPU determinism test runs here.", ""]
    lines += READING_NOTES
    return "\n".join(lines)


def test_reliability_table_in_docs_is_current():
    assert TABLE.read_text(encoding="utf-8") == render_table(), "run: python Testing/test_reliability.py"


def test_every_test_named_in_the_table_exists():
    sources = "\n".join(p.read_text(encoding="utf-8") for p in REPO.glob("*/Testing/test_*.py")) + \
        "\n".join(p.read_text(encoding="utf-8") for p in (REPO / "Testing").glob("test_*.py"))
    for _, _, tests in EXTRA_ROWS:
        for name in tests.split(","):
            assert f"def {name.strip()}(" in sources, name


if __name__ == "__main__":
    TABLE.write_text(render_table(), encoding="utf-8")
    print(f"wrote {TABLE}")
