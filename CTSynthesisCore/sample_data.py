"""Sample volumes shipped with the extension (``Resources/SampleData``), with their checksums and citations."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from .errors import UserInputError
from .weights import sha256_file


@dataclass(frozen=True)
class SampleVolume:
    name: str
    title: str
    file_name: str
    sha256: str
    citation: str


SAMPLES = {
    "t2_pelvis": SampleVolume(
        "t2_pelvis", "T2 pelvis (ProstateX)", "prostatex0000_t2.nii.gz",
        "79202b407a54c61d446777718415845c278c0e28b12a940466c16cd5faf3603a",
        "Litjens G, Debats O, Barentsz J, Karssemeijer N, Huisman H. ProstateX Challenge data. TCIA, 2017. "
        "doi:10.7937/K9TCIA.2017.MURS5CL (CC BY 3.0)"),
    "ct_abdomen_pelvis_3mm": SampleVolume(
        "ct_abdomen_pelvis_3mm", "CT abdomen-pelvis 3 mm (TotalSegmentator example)", "totalseg_example_ct_3mm.nii.gz",
        "2f19f6558ebc230158c3356084627c34b82fe23ea6048e65a10ae5c143e864c9",
        "Wasserthal J et al. TotalSegmentator: robust segmentation of 104 anatomic structures in CT images. "
        "Radiology: Artificial Intelligence, 2023 (example file from the Apache-2.0 repository)"),
    "ct_chest_thin_1p5mm": SampleVolume(
        "ct_chest_thin_1p5mm", "CT chest thin slices 1.5 mm (TotalSegmentator aorta test)", "totalseg_aorta_ct_1p5mm.nii.gz",
        "611b8a2daf7c3efc11075a93ee1599f3fc31ef741c0a56f6b1718a940db0af6e",
        "Wasserthal J et al. TotalSegmentator: robust segmentation of 104 anatomic structures in CT images. "
        "Radiology: Artificial Intelligence, 2023 (test file from the Apache-2.0 repository)"),
    "ct_chest_thick_4p5mm": SampleVolume(
        "ct_chest_thick_4p5mm", "CT chest thick slices 4.5 mm (from the TotalSegmentator aorta test)",
        "totalseg_aorta_ct_4p5mm.nii.gz", "4e6b3acd819935c80158c9616ba7d7b00efafe21518805668756318c32f2c66b",
        "Wasserthal J et al. TotalSegmentator: robust segmentation of 104 anatomic structures in CT images. "
        "Radiology: Artificial Intelligence, 2023 (test file from the Apache-2.0 repository, 1.5 mm slices averaged "
        "in threes by scripts/make_thick_sample.py)"),
    "mr_abdomen": SampleVolume(
        "mr_abdomen", "MR upper abdomen (TotalSegmentator example; not a pelvis)", "totalseg_example_mr_abdomen.nii.gz",
        "209b46efaff595dd54a9332872e17a722b62654bbb68dbd89acd5090701bbd4f",
        "Akinci D'Antonoli T, Berger LK, et al. TotalSegmentator MRI: robust sequence-independent segmentation of "
        "multiple anatomic structures in MRI. Radiology, 2025 (example file from the Apache-2.0 repository "
        "wasserth/TotalSegmentator)"),
}


def sample_folders() -> list[Path]:
    here = Path(__file__).resolve().parent
    return [here.parent / "Resources" / "SampleData", Path(sys.prefix) / "share" / "ctsynthesis" / "SampleData"]


def sample_path(name: str, verify: bool = True) -> Path:
    """Path of a shipped sample volume, checked against its recorded sha256."""
    if name not in SAMPLES:
        raise UserInputError(f"unknown sample '{name}' (choose from {', '.join(SAMPLES)})")
    sample = SAMPLES[name]
    for folder in sample_folders():
        path = folder / sample.file_name
        if path.is_file():
            if verify and sha256_file(path) != sample.sha256:
                raise UserInputError(f"sample file {path} does not match its recorded checksum")
            return path
    raise UserInputError(f"sample '{name}' is not installed (looked in {', '.join(map(str, sample_folders()))})")
