"""The shipped samples in Slicer's Sample Data module (files in the extension, no network)."""

from __future__ import annotations

from ..sample_data import SAMPLES, sample_path

SAMPLE_DATA_CATEGORY = "CTSynthesis"


def sample_data_source(name: str) -> dict:
    """Keyword arguments of Slicer's ``SampleDataLogic.registerCustomSampleDataSource`` for a shipped
    sample: a ``file://`` URI to the file in the extension (no network), its SHA256 and a thumbnail."""
    path = sample_path(name)
    sample = SAMPLES[name]
    thumbnail = path.parent / f"{name}.png"
    return {
        "category": SAMPLE_DATA_CATEGORY,
        "sampleName": sample.title,
        "uris": path.as_uri(),
        "fileNames": sample.file_name,
        "nodeNames": sample.title.split(" (")[0],
        "checksums": f"SHA256:{sample.sha256}",
        "thumbnailFileName": str(thumbnail) if thumbnail.is_file() else None,
        "loadFileTypes": "VolumeFile",  # "loadFileType" is deprecated since Slicer 5.8 (SampleData.py)
    }


def register_sample_data(names: tuple[str, ...]) -> None:
    """Register shipped samples with Slicer's Sample Data module (call after Slicer's startup)."""
    import SampleData

    for name in names:
        SampleData.SampleDataLogic.registerCustomSampleDataSource(**sample_data_source(name))
