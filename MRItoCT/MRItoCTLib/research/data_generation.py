"""``mritoct make-data``: paired T2 MRI / CT cases in the SynthRAD layout (phantoms and CT-derived pairs)."""

from __future__ import annotations

import json
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


def make_dataset(out: str | Path, cases: int, seed: int, from_ct: list[str] | None = None,
                 progress: ProgressCallback = no_progress, cancel: CancelToken | None = None, per_ct: int = 1,
                 allow_contrast: bool = False) -> dict:
    """Write ``cases`` phantom cases and ``per_ct`` randomised CT-derived cases per given CT; returns the dataset
    record (``dataset.json``: the cases, their sources and splits, and the rendering recipe). A CT that looks
    contrast-enhanced is refused unless ``allow_contrast``."""
    out = Path(out)
    if cases < 0:
        raise UserInputError("--cases must be 0 or more")
    sources = [Path(p) for p in (from_ct or [])]
    for source in sources:
        if not source.exists():
            raise UserInputError(f"CT not found: {source}")
    if cases == 0 and not sources:
        raise UserInputError("nothing to make: give --cases N and/or --from-ct files")
    cts = {source: read_volume(source) for source in sources}
    shares = {}
    for source, ct in cts.items():
        check_scalar_volume(ct, f"CT {source}")
        shares[source] = enhanced_share(ct) if allow_contrast else check_not_contrast_enhanced(ct, source)
    out.mkdir(parents=True, exist_ok=True)
    record = {"generator": "mritoct make-data", "seed": seed, "layout": "SynthRAD task 1 (<case>/mr.nii.gz, ct.nii.gz, mask.nii.gz)",
              "ct_derived_recipe": json.loads(json.dumps(RECIPE)), "cases": []}
    total = cases + len(sources) * per_ct
    for index in range(cases):
        if cancel is not None:
            cancel.raise_if_set()
        rng = np.random.default_rng([seed, index])
        name = f"phantom_{seed:04d}_{index:03d}"
        _write_case(out / name, *make_phantom_case(rng))
        record["cases"].append({"name": name, "kind": "phantom", "split": split_of(name)})
        progress(index + 1, total, name)
    done = cases
    for offset, (source, ct) in enumerate(cts.items()):
        for copy in range(per_ct):
            if cancel is not None:
                cancel.raise_if_set()
            rng = np.random.default_rng([seed, 10_000 + offset, copy])
            name = "ct_" + source.name.split(".")[0] + (f"_{copy:03d}" if per_ct > 1 else "")
            _write_case(out / name, *pair_from_ct(ct, rng))
            record["cases"].append({"name": name, "kind": "ct-derived", "source": source.name,
                                    "enhanced_share": round(shares[source], 4),
                                    "split": split_of("ct_" + source.name.split(".")[0])})  # one patient, one split
            done += 1
            progress(done, total, name)
    (out / "dataset.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return record
