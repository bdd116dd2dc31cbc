"""``mritoct make-data``: paired T2 MRI / CT cases in the SynthRAD layout (phantoms and CT-derived pairs)."""

from __future__ import annotations

import json
import multiprocessing
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from CTSynthesisCore.errors import UserInputError
from CTSynthesisCore.progress import CancelToken, ProgressCallback, no_progress
from CTSynthesisCore.volume_io import check_scalar_volume, read_volume, write_volume

from .ct_pairs import CONTRAST_SHARE, ENHANCED_HU, RECIPE, enhanced_share, pair_from_ct
from .dataset import split_of
from .phantom import make_phantom_case


def _write_case(folder: Path, mri, ct, mask) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    write_volume(mri, folder / "mr.nii.gz")
    write_volume(ct, folder / "ct.nii.gz")
    write_volume(mask, folder / "mask.nii.gz")


def check_not_contrast_enhanced(ct, source: Path) -> float:
    """The CT's enhanced share; a one-line error when it looks contrast-enhanced: iodine is invisible on MRI, so its
    pairs would teach the network bone-like HU where a T2 image shows blood or an organ."""
    share = enhanced_share(ct)
    if share > CONTRAST_SHARE:
        raise UserInputError(
            f"CT {source.name} looks contrast-enhanced ({100 * share:.0f} % of the body between {ENHANCED_HU[0]:.0f} "
            f"and {ENHANCED_HU[1]:.0f} HU, above {100 * CONTRAST_SHARE:.0f} %): MRI cannot see iodine, so its pairs "
            "would teach bone-like HU in blood; use a non-contrast CT, or --allow-contrast")
    return share


@dataclass(frozen=True)
class CaseJob:
    """One case to make: its folder name, its random seed, and its CT (``None``: a phantom)."""

    name: str
    seed: tuple[int, ...]
    source: Path | None = None


@lru_cache(maxsize=2)  # jobs come in order of their CT: a process holds at most two CTs in memory
def _read_ct(source: Path):
    return read_volume(source)


def make_case(job: CaseJob, out: Path) -> None:
    """Make and write one case; its content depends on the job alone, not on which process makes it or when."""
    rng = np.random.default_rng(list(job.seed))
    pair = make_phantom_case(rng) if job.source is None else pair_from_ct(_read_ct(job.source), rng)
    _write_case(out / job.name, *pair)


def run_jobs(jobs: list[CaseJob], out: Path, workers: int, progress: ProgressCallback,
             cancel: CancelToken | None) -> None:
    """Make the cases, in this process (``workers`` 1) or in that many processes; cancel stops between cases."""
    if workers == 1:
        for done, job in enumerate(jobs, start=1):
            if cancel is not None:
                cancel.raise_if_set()
            make_case(job, out)
            progress(done, len(jobs), job.name)
        return
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(make_case, job, out): job for job in jobs}
        try:
            for done, future in enumerate(as_completed(futures), start=1):
                future.result()
                progress(done, len(jobs), futures[future].name)
                if cancel is not None:
                    cancel.raise_if_set()
        finally:
            for future in futures:
                future.cancel()


def make_dataset(out: str | Path, cases: int, seed: int, from_ct: list[str] | None = None,
                 progress: ProgressCallback = no_progress, cancel: CancelToken | None = None, per_ct: int = 1,
                 allow_contrast: bool = False, workers: int = 1) -> dict:
    """Write ``cases`` phantom cases and ``per_ct`` randomised CT-derived cases per given CT, in ``workers``
    processes (the same cases whatever their number); returns the dataset record (``dataset.json``: the cases,
    their sources and splits, and the rendering recipe). A CT that looks contrast-enhanced is refused unless
    ``allow_contrast``."""
    out = Path(out)
    if cases < 0:
        raise UserInputError("--cases must be 0 or more")
    if workers < 1:
        raise UserInputError("--workers must be 1 or more")
    sources = [Path(p) for p in (from_ct or [])]
    for source in sources:
        if not source.exists():
            raise UserInputError(f"CT not found: {source}")
    if cases == 0 and not sources:
        raise UserInputError("nothing to make: give --cases N and/or --from-ct files")
    shares = {}
    for source in sources:
        ct = _read_ct(source)
        check_scalar_volume(ct, f"CT {source}")
        shares[source] = enhanced_share(ct) if allow_contrast else check_not_contrast_enhanced(ct, source)
    out.mkdir(parents=True, exist_ok=True)
    record = {"generator": "mritoct make-data", "seed": seed, "layout": "SynthRAD task 1 (<case>/mr.nii.gz, ct.nii.gz, mask.nii.gz)",
              "ct_derived_recipe": json.loads(json.dumps(RECIPE)), "cases": []}
    jobs = [CaseJob(f"phantom_{seed:04d}_{index:03d}", (seed, index)) for index in range(cases)]
    record["cases"] += [{"name": job.name, "kind": "phantom", "split": split_of(job.name)} for job in jobs]
    for offset, source in enumerate(sources):
        patient = "ct_" + source.name.split(".")[0]
        for copy in range(per_ct):
            job = CaseJob(patient + (f"_{copy:03d}" if per_ct > 1 else ""), (seed, 10_000 + offset, copy), source)
            jobs.append(job)
            record["cases"].append({"name": job.name, "kind": "ct-derived", "source": source.name,
                                    "enhanced_share": round(shares[source], 4),
                                    "split": split_of(patient)})  # one patient, one split
    try:
        run_jobs(jobs, out, workers, progress, cancel)
    finally:
        _read_ct.cache_clear()
    (out / "dataset.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return record
