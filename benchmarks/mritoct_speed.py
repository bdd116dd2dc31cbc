"""MRItoCT speed per sampler on a 256x256x128 pelvis volume at model spacing; prints markdown tables, writes CSV.

The volume is the bundled ProstateX T2 placed on a 256 x 256 x 128 grid at the model's 2 mm
in-plane spacing. Each sampler runs through the real pipeline (``synthesize``) with its default
steps. With ``--full`` every row is a complete run of the whole volume (use it on a GPU). Without
it (CPU), each sampler runs ``--measure-steps`` steps on ``--measure-slices`` slices with MC 4 in
one batch, and the seconds per slice and per volume are that measured rate times the full NFE
(network and sampler time; the input/output resampling of a full volume is not included).
Peak host memory is the process's peak resident set during the run (VmHWM, reset before each
run); peak GPU memory is PyTorch's peak allocation. TFLOP/s counts the network's FLOPs with
``torch.utils.flop_counter`` and compares them with the GPU's dense bf16 peak.

    python benchmarks/mritoct_speed.py [--device auto|cpu|cuda] [--full] [--runs ddpm=1000 dpmpp ...] [--compare-paths]
"""

from __future__ import annotations

import argparse
import datetime
import platform
import time
from pathlib import Path

import SimpleITK as sitk
import torch

from CTSynthesisCore.device import choose_device
from CTSynthesisCore.sample_data import sample_path
from CTSynthesisCore.tables import write_csv
from MRItoCTLib.model import load_model
from MRItoCTLib.pipeline import synthesize
from MRItoCTLib.settings import SynthesisSettings
from MRItoCTLib.catalog import DEFAULT_MODEL, SAMPLERS

BF16_PEAK_TFLOPS = {"H100 SXM": 989.4, "H100 80GB HBM3": 989.4, "H100 PCIe": 756.0, "H100 NVL": 835.0,
                    "H200": 989.4, "A100": 312.0, "L40S": 362.0, "L4": 121.0}  # dense, vendor data sheets
CLEAR_REFS = Path("/proc/self/clear_refs")


def pelvis_volume(size: tuple[int, int, int] = (256, 256, 128), spacing_xy: float = 2.0) -> sitk.Image:
    """The bundled T2 centred on a ``size`` grid at ``spacing_xy`` mm in-plane, its slab spread over the slices."""
    image = sitk.ReadImage(str(sample_path("t2_pelvis")), sitk.sitkFloat32)
    extent_z = image.GetSize()[2] * image.GetSpacing()[2]
    spacing = (spacing_xy, spacing_xy, extent_z / size[2])
    centre = image.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2 for n in image.GetSize()])
    direction = image.GetDirection()
    half = [(n - 1) / 2 * s for n, s in zip(size, spacing)]
    origin = [centre[i] - sum(direction[3 * i + j] * half[j] for j in range(3)) for i in range(3)]
    return sitk.Resample(image, size, sitk.Transform(), sitk.sitkLinear, origin, spacing, direction, 0.0)


def reset_peak_host_memory() -> None:
    if CLEAR_REFS.exists():
        CLEAR_REFS.write_text("5", encoding="ascii")  # resets VmHWM (Linux)


def peak_host_mib() -> float:
    for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def network_flops(model, height: int, width: int, device: str) -> float:
    """FLOPs of one network evaluation of one slice (2 per multiply-add)."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model.network(torch.zeros(1, 1, height, width, device=device), torch.full((1,), 0.5, device=device),
                      torch.zeros(1, model.config.condition_channels, height, width, device=device))
    return float(counter.get_total_flops())


def bf16_peak(device: str) -> float | None:
    if not device.startswith("cuda"):
        return None
    name = torch.cuda.get_device_name(0)
    return next((peak for key, peak in BF16_PEAK_TFLOPS.items() if key in name), None)


def timed_run(volume: sitk.Image, model, settings: SynthesisSettings, device: str) -> tuple[float, int, float, float]:
    """Seconds, NFE per sample, peak host MiB and peak GPU MiB of one synthesis."""
    reset_peak_host_memory()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    result = synthesize(volume, model, settings, device=device)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    gpu = torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else float("nan")
    return seconds, result.nfe, peak_host_mib(), gpu


def full_nfe(sampler: str, steps: int, volume: sitk.Image, model, device: str, options: dict,
             ode_tolerance: float) -> int:
    """NFE per sample at ``steps`` (adaptive RK45: counted on the middle slice)."""
    if sampler == "ode":
        settings = SynthesisSettings(sampler="ode", mc=1, batch_size=1, **options,
                                     sampler_options=ode_options(ode_tolerance))
        return synthesize(volume[:, :, volume.GetSize()[2] // 2:][:, :, :1], model, settings, device=device).nfe
    return SAMPLERS[sampler].network_evaluations(steps, {})


def parse_runs(items: list[str]) -> list[tuple[str, int]]:
    """``ddpm=1000 dpmpp`` -> [("ddpm", 1000), ("dpmpp", its default steps)]."""
    runs = []
    for item in items:
        sampler, _, steps = item.partition("=")
        if sampler not in SAMPLERS:
            raise SystemExit(f"unknown sampler {sampler!r} (choose from {', '.join(SAMPLERS)})")
        runs.append((sampler, int(steps) if steps else SAMPLERS[sampler].default_steps))
    return runs


def ode_options(tolerance: float) -> dict:
    return {"method": "rk45", "tolerance": tolerance}


PATHS = {
    "plain (fp32, NCHW, eager)": {"precision": "fp32", "channels_last": False},
    "channels_last": {"precision": "fp32", "channels_last": True},
    "channels_last + torch.compile": {"precision": "fp32", "channels_last": True, "compile": "default"},
    "channels_last + bf16 autocast": {"precision": "bf16", "channels_last": True},
}


def compare_paths(volume: sitk.Image, model, device: str, steps: int, slice_count: int) -> None:
    """Seconds of DPM-Solver++ (MC 4) on a slab with each combination of fast paths, against the plain path."""
    part = volume[:, :, volume.GetSize()[2] // 2: volume.GetSize()[2] // 2 + slice_count]
    results = {}
    for name, options in PATHS.items():
        if options["precision"] == "bf16" and not device.startswith("cuda"):
            continue  # bf16 is emulated on most CPUs (about 40x slower here): not a fast path there
        settings = SynthesisSettings(sampler="dpmpp", steps=steps, mc=4, batch_size=8, **options)
        synthesize(part, model, settings, device=device)  # warm-up (compilation, allocator)
        results[name] = timed_run(part, model, settings, device)[0]
    print(f"\nFast paths, DPM-Solver++ {steps} steps, MC 4, {slice_count} slices of 256x256, batch 8:\n")
    print("| path | seconds | speed-up over plain |\n|---|---|---|")
    plain = results[next(iter(PATHS))]
    for name, seconds in results.items():
        print(f"| {name} | {seconds:.2f} | {plain / seconds:.2f}x |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"model name or folder (default {DEFAULT_MODEL})")
    parser.add_argument("--runs", nargs="+", default=["ddpm=1000", *SAMPLERS],
                        help="SAMPLER or SAMPLER=STEPS (default: DDPM-1000, then every sampler at its default steps)")
    parser.add_argument("--mc", nargs="+", type=int, default=[1, 10])
    parser.add_argument("--full", action="store_true", help="complete runs of the whole volume (GPU)")
    parser.add_argument("--measure-steps", type=int, default=5, help="steps of a measured run without --full")
    parser.add_argument("--measure-slices", type=int, default=2, help="slices of a measured run without --full")
    parser.add_argument("--compile", default="off", help="torch.compile mode for the fast path")
    parser.add_argument("--ode-tolerance", type=float, default=1e-3,
                        help="rk45 tolerance of the ode sampler (default 1e-3; the paper's 1e-5 needs far more NFE)")
    parser.add_argument("--compare-paths", action="store_true", help="also time each fast path against the plain one")
    parser.add_argument("--csv", default="mritoct_speed.csv")
    args = parser.parse_args()
    choice = choose_device(args.device)
    device = choice.device
    model = load_model(args.model, device)
    volume = pelvis_volume()
    slices = volume.GetSize()[2]
    flops = network_flops(model, 256, 256, device)
    peak = bf16_peak(device)
    fast = {"compile": args.compile}
    synthesize(volume[:, :, 60:62], model, SynthesisSettings(sampler="ddim", steps=1, mc=1, **fast), device=device)

    rows = []
    for sampler, steps in parse_runs(args.runs):
        nfe = full_nfe(sampler, steps, volume, model, device, fast, args.ode_tolerance)
        options = ode_options(args.ode_tolerance) if sampler == "ode" else {}
        for mc in args.mc:
            if args.full:
                settings = SynthesisSettings(sampler=sampler, steps=steps if SAMPLERS[sampler].uses_steps(options) else None,
                                             mc=mc, sampler_options=options, **fast)
                seconds, nfe, host, gpu = timed_run(volume, model, settings, device)
                per_slice, per_volume, how = seconds / slices / mc, seconds, "complete run"
            else:
                measured_mc = 4
                rate_options = {"method": "heun"} if sampler == "ode" else {}  # fixed steps: the same cost per NFE
                settings = SynthesisSettings(sampler=sampler, steps=args.measure_steps, mc=measured_mc,
                                             sampler_options=rate_options, **fast)
                part = volume[:, :, slices // 2: slices // 2 + args.measure_slices]
                seconds, measured_nfe, host, gpu = timed_run(part, model, settings, device)
                per_input_nfe = seconds / (measured_nfe * args.measure_slices * measured_mc)
                per_slice = per_input_nfe * nfe
                per_volume = per_slice * slices * mc
                how = f"{measured_nfe}-NFE run of {args.measure_slices} slices x MC {measured_mc}, scaled to NFE {nfe}"
            tflops = flops * nfe * slices * mc / per_volume / 1e12
            rows.append({"sampler": sampler, "steps": f"rk45 {args.ode_tolerance:g}" if sampler == "ode" else steps, "nfe": nfe, "mc": mc,
                         "seconds_per_slice": per_slice, "seconds_per_volume": per_volume, "peak_host_mib": host,
                         "peak_gpu_mib": gpu, "tflops": tflops,
                         "percent_of_bf16_peak": 100 * tflops / peak if peak else float("nan"), "how": how})
            print(f"{sampler} MC {mc}: {per_volume:.1f} s per volume ({how})", flush=True)

    cpu = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    print(f"\nMRItoCT speed, 256x256x128 at 2 mm in-plane, {datetime.date.today()}, {choice.reason}; CPU: {cpu}; "
          f"network {flops / 1e9:.1f} GFLOP per slice evaluation; fast paths on (precision auto, channels_last, "
          f"compile {args.compile})\n")
    print("| sampler | steps | NFE | MC | s/slice (per sample) | s/volume | peak host MiB | peak GPU MiB | "
          "TFLOP/s | % bf16 peak | how |\n|---|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        def fmt(value: float, digits: int) -> str:
            return "–" if value != value else f"{value:.{digits}f}"
        print(f"| {row['sampler']} | {row['steps']} | {row['nfe']} | {row['mc']} | {row['seconds_per_slice']:.3f} | "
              f"{row['seconds_per_volume']:.1f} | {fmt(row['peak_host_mib'], 0)} | {fmt(row['peak_gpu_mib'], 0)} | "
              f"{row['tflops']:.3f} | {fmt(row['percent_of_bf16_peak'], 1)} | {row['how']} |")
    ddpm = next((r for r in rows if (r["sampler"], r["steps"], r["mc"]) == ("ddpm", 1000, args.mc[0])), None)
    if ddpm:
        print("\nSpeed-up over DDPM-1000 (same run): " + ", ".join(
            f"{r['sampler']}-{r['steps']} {ddpm['seconds_per_slice'] / r['seconds_per_slice']:.0f}x"
            for r in rows if r["mc"] == args.mc[0] and r is not ddpm))
    write_csv(args.csv, rows)
    if args.compare_paths:
        compare_paths(volume, model, device, args.measure_steps, args.measure_slices)


if __name__ == "__main__":
    main()
