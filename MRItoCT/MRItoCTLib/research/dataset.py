"""Paired MRI/CT data in the SynthRAD 2023/2025 task-1 layout, split by case, as 2D training slices.

Layout: ``<root>/<case>/mr.nii.gz``, ``ct.nii.gz`` and optionally ``mask.nii.gz``.
Every case goes through exactly the preprocessing used at inference
(:func:`~MRItoCTLib.pipeline.prepare_mri`), so training and synthesis see the same inputs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk
import torch

from CTSynthesisCore.errors import UserInputError
from CTSynthesisCore.hounsfield import AIR_HU
from CTSynthesisCore.volume_io import read_volume

from ..intensity import IntensityMapping
from ..pipeline import context_stack, prepare_mri

SPLITS = ("train", "validation", "test")


def find_cases(root: str | Path) -> list[Path]:
    """Case folders under ``root`` holding ``mr.nii.gz`` and ``ct.nii.gz``."""
    root = Path(root)
    if not root.is_dir():
        raise UserInputError(f"data folder not found: {root}")
    cases = sorted(p for p in root.iterdir() if (p / "mr.nii.gz").is_file() and (p / "ct.nii.gz").is_file())
    if not cases:
        raise UserInputError(f"no cases in {root} (expected <case>/mr.nii.gz and <case>/ct.nii.gz)")
    return cases


def split_of(case_name: str, validation: float = 0.15, test: float = 0.15) -> str:
    """Deterministic split by case (a hash of its name), never by slice."""
    fraction = int(hashlib.sha256(case_name.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "test" if fraction < test else "validation" if fraction < test + validation else "train"


def dataset_record(root: Path) -> dict:
    """The ``dataset.json`` that ``mritoct make-data`` writes (empty for other data, such as real pairs)."""
    path = root / "dataset.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def recorded_splits(root: Path) -> dict[str, str]:
    """The split of each case as ``dataset.json`` records it (copies of one CT share their patient's split)."""
    return {case["name"]: case["split"] for case in dataset_record(root).get("cases", []) if "split" in case}


def rendering_recipe(root: str | Path) -> dict | None:
    """The ranges the CT-derived MRIs of a dataset were rendered with (``dataset.json``), if it has any."""
    return dataset_record(Path(root)).get("ct_derived_recipe")


def cases_in_split(root: str | Path, split: str) -> list[Path]:
    """The case folders of one split (train, validation, test or all): as ``dataset.json`` records them, else by a
    hash of the case name."""
    cases = find_cases(root)
    if split == "all":
        return cases
    recorded = recorded_splits(Path(root))
    return [c for c in cases if recorded.get(c.name, split_of(c.name)) == split]


DataFolders = str | Path | Sequence[str | Path]


def data_folders(data: DataFolders) -> list[Path]:
    """One data folder or several, as a list."""
    return [Path(data)] if isinstance(data, (str, Path)) else [Path(folder) for folder in data]


def check_unique_case_names(folders: list[Path]) -> None:
    """Refuse a case name found in two folders: splits and model cards name cases by their folder's name, so the
    two could land in different splits (a leak between training and validation)."""
    seen: dict[str, Path] = {}
    for folder in folders:
        for case in find_cases(folder):
            if case.name in seen:
                raise UserInputError(f"case {case.name} is in both {seen[case.name]} and {folder}; rename one")
            seen[case.name] = folder


def cases_in_folders(data: DataFolders, splits: Sequence[str]) -> list[list[Path]]:
    """:func:`cases_in_split` over one folder or several, one list per split; case names are checked once
    (:func:`check_unique_case_names`)."""
    folders = data_folders(data)
    check_unique_case_names(folders)
    return [[case for folder in folders for case in cases_in_split(folder, split)] for split in splits]


def recipes_by_folder(data: DataFolders) -> dict[str, dict]:
    """The rendering recipe of each data folder that records one (real pairs have none)."""
    recipes = {str(folder): rendering_recipe(folder) for folder in data_folders(data)}
    return {folder: recipe for folder, recipe in recipes.items() if recipe is not None}


def recipe_record(data: DataFolders) -> dict[str, Any]:
    """What a model's metadata records of how its data was rendered: ``data_recipe``, the one recipe its folders
    share (None without any), and, where folders differ (data made before and after a recipe changed),
    ``data_recipes``: each folder's."""
    recipes = recipes_by_folder(data)
    first = next(iter(recipes.values()), None)
    if all(recipe == first for recipe in recipes.values()):
        return {"data_recipe": first}
    return {"data_recipe": None, "data_recipes": recipes}


@dataclass
class PreparedCase:
    """One case on the model grid: MRI and CT in [-1, 1] and the body mask, (z, y, x)."""

    name: str
    mri: np.ndarray
    ct: np.ndarray
    mask: np.ndarray
    grid: sitk.Image


def prepare_case(folder: Path, spacing_xy: tuple[float, float], intensity: IntensityMapping) -> PreparedCase:
    """Read and preprocess a case exactly as inference does; the CT is resampled onto the MRI's model grid."""
    mask = read_volume(folder / "mask.nii.gz") if (folder / "mask.nii.gz").is_file() else None
    return prepare_pair(folder.name, read_volume(folder / "mr.nii.gz"), read_volume(folder / "ct.nii.gz"), mask,
                        spacing_xy, intensity)


def prepare_pair(name: str, mri: sitk.Image, ct: sitk.Image, given_mask: sitk.Image | None,
                 spacing_xy: tuple[float, float], intensity: IntensityMapping) -> PreparedCase:
    """An MRI/CT pair (and its body mask, if given) preprocessed exactly as inference does."""
    prepared = prepare_mri(mri, spacing_xy, intensity)
    ct = sitk.Resample(ct, prepared.grid, sitk.Transform(), sitk.sitkLinear, AIR_HU, sitk.sitkFloat32)
    mask = prepared.mask
    if given_mask is not None:
        given = sitk.Resample(given_mask, prepared.grid, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
        mask = sitk.GetArrayFromImage(given).astype(bool)
    ct_unit = intensity.hu_to_unit(np.where(mask, sitk.GetArrayFromImage(ct), AIR_HU)).astype(np.float32)
    return PreparedCase(name, prepared.mri_unit, ct_unit, mask, prepared.grid)


def vary_contrast(condition: np.ndarray, gamma: float) -> np.ndarray:
    """Gamma curve on unit MRI intensities (-1 stays -1, +1 stays +1): scanners and protocols weigh T2 differently."""
    return (np.power((np.clip(condition, -1.0, None) + 1.0) / 2.0, gamma) * 2.0 - 1.0).astype(np.float32)


class SliceSampler:
    """Random 2D crops (with MRI context slices) from prepared cases, drawn with a seeded generator."""

    def __init__(self, cases: list[PreparedCase], crop: int, context: int, seed: int, mri_gamma: float = 0.0) -> None:
        if not cases:
            raise UserInputError("no training cases")
        self.cases, self.crop, self.context, self.mri_gamma = cases, crop, context, mri_gamma
        self.rng = np.random.default_rng(seed)
        self.slice_index = [(c, k) for c in range(len(cases)) for k in range(cases[c].mri.shape[0])
                            if cases[c].mask[k].mean() > 0.05]

    def _crop(self, array: np.ndarray, top: int, left: int, fill: float) -> np.ndarray:
        height, width = array.shape[-2:]
        pad_h, pad_w = max(0, self.crop - height), max(0, self.crop - width)
        if pad_h or pad_w:
            array = np.pad(array, [(0, 0)] * (array.ndim - 2) + [(0, pad_h), (0, pad_w)], constant_values=fill)
        return array[..., top:top + self.crop, left:left + self.crop]

    def batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(CT (B, 1, crop, crop), MRI condition (B, 1 + 2 context, crop, crop))."""
        cts, conditions = [], []
        for pick in self.rng.integers(0, len(self.slice_index), size):
            case_index, k = self.slice_index[pick]
            case = self.cases[case_index]
            height, width = case.mri.shape[1:]
            top = int(self.rng.integers(0, max(1, height - self.crop + 1)))
            left = int(self.rng.integers(0, max(1, width - self.crop + 1)))
            condition = context_stack(case.mri, [k], self.context)[0]
            flip = self.rng.random() < 0.5  # left-right mirror: anatomy is roughly symmetric
            ct = self._crop(case.ct[k][None], top, left, -1.0)
            condition = self._crop(condition, top, left, -1.0)
            if flip:
                ct, condition = ct[..., ::-1], condition[..., ::-1]
            if self.mri_gamma:
                condition = vary_contrast(condition, float(np.exp(self.rng.uniform(-self.mri_gamma, self.mri_gamma))))
            cts.append(np.ascontiguousarray(ct))
            conditions.append(np.ascontiguousarray(condition))
        return torch.from_numpy(np.stack(cts)), torch.from_numpy(np.stack(conditions))
