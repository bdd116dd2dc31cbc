"""NIfTI voxels and scaling that ITK's reader would change without a word, found in the file itself.

ITK's NIfTI reader (SimpleITK's, and so Slicer's volume loading) replaces NaN and +/-Inf voxels of
float data by 0 while reading, so a check of the image it returns cannot see them; and it applies a
header scaling that the NIfTI standard and other readers treat as absent. This reads the NIfTI-1/-2
(or Analyze 7.5) header and streams the data block, gzip'd or not, with numpy: no NIfTI library.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from .errors import UserInputError

FLOAT_DATATYPES = {16: "f4", 32: "c8", 64: "f8", 1792: "c16"}  # NIfTI datatype code -> numpy type
CHUNK_BYTES = 1 << 24
HEADER_SUFFIXES = {".nii": ".nii", ".nii.gz": ".nii.gz", ".hdr": ".hdr", ".hdr.gz": ".hdr.gz",
                   ".img": ".hdr", ".img.gz": ".hdr.gz"}  # a file name's ending -> its header's ending
SINGLE_FILE = (b"n+1", b"n+2")  # the magic of a header followed by its data; b"ni1"/b"ni2": data in a .img
NIFTI_MAGIC = (*SINGLE_FILE, b"ni1", b"ni2")  # anything else in a 348-byte header is Analyze 7.5


@dataclass(frozen=True)
class NiftiHeader:
    """What a NIfTI-1/-2 or Analyze header says about where the voxels are and how they are scaled."""

    byte_order: str
    datatype: int
    voxels: int
    vox_offset: int
    slope: float
    inter: float
    magic: bytes


def _ending(path: Path) -> str:
    name = path.name.lower()
    return next((ending for ending in HEADER_SUFFIXES if name.endswith(ending)), "")


def header_file(path: Path) -> Path | None:
    """The header file of a NIfTI or Analyze volume named by ``path`` (None for other formats)."""
    ending = _ending(path)
    if not ending:
        return None
    header = path.with_name(path.name[: -len(ending)] + HEADER_SUFFIXES[ending]) if ending.startswith(".img") else path
    return header if header.is_file() else None


def parse_header(raw: bytes) -> NiftiHeader | None:
    """The fields of a NIfTI-1 (348 bytes, also Analyze) or NIfTI-2 (540 bytes) header, in either byte order."""
    for order in "<>":
        size = struct.unpack_from(order + "i", raw)[0] if len(raw) >= 4 else 0
        if size == 348 and len(raw) >= 348:
            dims, datatype = struct.unpack_from(order + "8h", raw, 40), struct.unpack_from(order + "h", raw, 70)[0]
            offset, slope, inter = struct.unpack_from(order + "3f", raw, 108)
            return _header(order, datatype, dims, int(offset), slope, inter, raw[344:347], size)
        if size == 540 and len(raw) >= 540:
            datatype, dims = struct.unpack_from(order + "h", raw, 12)[0], struct.unpack_from(order + "8q", raw, 16)
            offset, slope, inter = struct.unpack_from(order + "q2d", raw, 168)
            return _header(order, datatype, dims, offset, slope, inter, raw[4:7], size)
    return None


def _header(order: str, datatype: int, dims: tuple, offset: int, slope: float, inter: float, magic: bytes,
            size: int) -> NiftiHeader | None:
    """The header, or None for invalid dimensions; in a .nii the data starts after the header (as niftilib reads)."""
    rank = dims[0]
    if not 1 <= rank <= 7 or min(dims[1: rank + 1]) < 0:
        return None
    start = max(offset, size) if magic in SINGLE_FILE else max(offset, 0)
    return NiftiHeader(order, datatype, math.prod(dims[1: rank + 1]), start, slope, inter, magic)


def data_file(header_path: Path, header: NiftiHeader) -> Path:
    """The file holding the voxels: the header's own (.nii) or the .img (or .img.gz) beside it."""
    if header.magic in SINGLE_FILE:
        return header_path
    stem = header_path.name[: -len(_ending(header_path))]
    endings = (".img.gz", ".img") if header_path.name.lower().endswith(".gz") else (".img", ".img.gz")
    return next((header_path.with_name(stem + e) for e in endings if header_path.with_name(stem + e).is_file()),
                header_path.with_name(stem + endings[0]))


def _open(path: Path) -> BinaryIO:
    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")


def count_nonfinite(path: Path, header: NiftiHeader) -> int:
    """How many NaN or infinite voxels the data block holds (0 for integer data, which cannot hold any)."""
    if header.datatype not in FLOAT_DATATYPES:
        return 0
    dtype = np.dtype(header.byte_order + FLOAT_DATATYPES[header.datatype])
    remaining, bad = header.voxels * dtype.itemsize, 0
    with _open(path) as stream:
        stream.seek(header.vox_offset)
        while remaining > 0 and (chunk := stream.read(min(CHUNK_BYTES, remaining))):
            usable = len(chunk) - len(chunk) % dtype.itemsize
            bad += int(np.count_nonzero(~np.isfinite(np.frombuffer(chunk[:usable], dtype))))
            remaining -= len(chunk)
    return bad


def scaling_problem(header: NiftiHeader) -> str | None:
    """What is wrong with a scaling that ITK applies differently from the NIfTI standard and nibabel, or None."""
    # The standard: a zero or non-finite scl_slope means no scaling, but ITK still adds scl_inter; and ITK
    # takes a non-finite scl_inter beside a valid slope as 0, where nibabel refuses it.
    if header.magic not in NIFTI_MAGIC:
        return None  # Analyze 7.5 has no scaling fields
    slope_valid, inter_finite = math.isfinite(header.slope) and header.slope != 0, math.isfinite(header.inter)
    if (slope_valid and not inter_finite) or (not slope_valid and inter_finite and header.inter != 0):
        return (f"has an ambiguous intensity scaling in its NIfTI header (scl_slope {header.slope:g}, scl_inter "
                f"{header.inter:g}), which readers apply differently; fix the header first")
    return None


def check_nifti_file(path: Path, what: str, remedy: str = "fix or mask them first") -> None:
    """Refuse a NIfTI/Analyze file whose NaN/Inf voxels or scaling ITK would silently change (``what`` names it)."""
    header_path = header_file(Path(path))
    if header_path is None:
        return
    try:
        with _open(header_path) as stream:
            header = parse_header(stream.read(540))
        data = data_file(header_path, header) if header is not None else None
        if data is None or not data.is_file():
            return  # not a NIfTI volume: the reader reports it
        problem = scaling_problem(header)
        if problem:
            raise UserInputError(f"{what} {problem}")
        bad = count_nonfinite(data, header)
    except (OSError, EOFError, zlib.error) as error:
        raise UserInputError(f"cannot read {path}: {getattr(error, 'strerror', None) or error}") from None
    if bad:
        raise UserInputError(f"{what} holds {bad} NaN or infinite voxel(s); {remedy}")


def check_volume_node_file(node) -> None:
    """Refuse a volume node read from a NIfTI file with NaN/Inf voxels (Slicer's reader, ITK's, made them 0)."""
    storage = node.GetStorageNode()
    name = storage.GetFileName() if storage is not None else None
    if name and Path(name).is_file():
        check_nifti_file(Path(name), f"the volume '{node.GetName()}' was read from {Path(name).name}, which",
                         "Slicer read them as 0: fix or mask them and save the volume first")
