"""Test inputs: a NIfTI-1/-2 writer of its own (numpy, struct, gzip), which keeps NaN and Inf voxels exactly as
given and writes any scaling, byte order, version and the two-file (.hdr/.img) form; and a file read into a
volume node the way Slicer loads it."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

DATATYPES = {np.dtype(np.uint8): 2, np.dtype(np.int16): 4, np.dtype(np.float32): 16, np.dtype(np.float64): 64,
             np.dtype(np.uint16): 512}


def nifti_header(array: np.ndarray, spacing: tuple, scaling: tuple, version: int, order: str, pair: bool) -> bytes:
    """The header of ``array`` (numpy z, y, x order): identity qform, the given spacing and (scl_slope, scl_inter)."""
    dims = (3, *array.shape[::-1], 1, 1, 1, 1)
    code, pixdim = DATATYPES[array.dtype], (1.0, *spacing, 1.0, 1.0, 1.0, 1.0)
    if version == 1:
        header = bytearray(348)
        struct.pack_into(order + "i", header, 0, 348)
        struct.pack_into(order + "8h", header, 40, *dims)
        struct.pack_into(order + "2h", header, 70, code, array.dtype.itemsize * 8)
        struct.pack_into(order + "8f", header, 76, *pixdim)
        struct.pack_into(order + "3f", header, 108, 0 if pair else 352, *scaling)
        struct.pack_into(order + "h", header, 252, 1)  # qform_code: scanner, with a zero quaternion (identity)
        header[344:348] = b"ni1\0" if pair else b"n+1\0"
        return bytes(header)
    header = bytearray(540)
    struct.pack_into(order + "i", header, 0, 540)
    header[4:12] = (b"ni2\0" if pair else b"n+2\0") + b"\r\n\032\n"
    struct.pack_into(order + "2h8q", header, 12, code, array.dtype.itemsize * 8, *dims)
    struct.pack_into(order + "8d", header, 104, *pixdim)
    struct.pack_into(order + "q2d", header, 168, 0 if pair else 544, *scaling)
    struct.pack_into(order + "i", header, 344, 1)
    return bytes(header)


def write_nifti(path: Path, array: np.ndarray, spacing: tuple = (1.0, 1.0, 1.0), scaling: tuple = (1.0, 0.0),
                version: int = 1, order: str = "<") -> Path:
    """Write ``array`` to ``path`` (.nii, .nii.gz, or .hdr with its .img beside it); returns ``path``."""
    path = Path(path)
    pair = path.name.endswith(".hdr")
    header = nifti_header(array, spacing, scaling, version, order, pair)
    voxels = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder(order)).tobytes()
    opener = gzip.open if path.name.endswith(".gz") else open
    if pair:
        path.write_bytes(header)
        path.with_suffix(".img").write_bytes(voxels)
    else:
        with opener(path, "wb") as stream:
            stream.write(header + b"\0\0\0\0" + voxels)
    return path


def read_volume_node(scene, path: Path):
    """A scalar volume node read from ``path`` by Slicer's own volume storage node, as Slicer loads a file."""
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "input")
    storage = scene.AddNewNodeByClass("vtkMRMLVolumeArchetypeStorageNode")
    node.SetAndObserveStorageNodeID(storage.GetID())
    storage.SetFileName(str(path))
    assert storage.ReadData(node), f"Slicer could not read {path}"
    return node
