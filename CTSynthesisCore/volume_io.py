"""Reading, checking and writing volumes with SimpleITK, keeping their geometry.

Every engine takes and returns ``SimpleITK.Image`` objects in LPS physical space.
Writes are atomic (temporary file, then rename), so a failed or cancelled run
never leaves a partial output behind.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .errors import UserInputError
from .nifti_check import check_nifti_file

VOLUME_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd", ".dcm")


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


MEMORY_LIMIT_ENV = "CTSYNTHESIS_MEMORY_LIMIT_MB"


def memory_limit_bytes() -> int:
    """The memory a volume may take: ``CTSYNTHESIS_MEMORY_LIMIT_MB`` if set, else half the physical memory."""
    if os.environ.get(MEMORY_LIMIT_ENV):
        return int(float(os.environ[MEMORY_LIMIT_ENV]) * 2**20)
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    except (ValueError, OSError, AttributeError):
        return 8 * 2**30


def check_memory(voxels: int, bytes_per_voxel: int, what: str) -> None:
    """Refuse work whose arrays would not fit, before allocating them, naming the limit."""
    needed, limit = int(voxels) * int(bytes_per_voxel), memory_limit_bytes()
    if needed > limit:
        raise UserInputError(f"{what} needs about {needed / 2**30:.1f} GiB of memory, over the limit of "
                             f"{limit / 2**30:.1f} GiB (half the RAM, or {MEMORY_LIMIT_ENV}); crop or downsample it first")


def read_volume(path: str | os.PathLike) -> sitk.Image:
    """Read a volume file (NIfTI, NRRD, MHA, ...) or a DICOM series folder; its header is checked first
    so that a volume too large for memory is refused before it is read, and a NIfTI file's own voxels and
    scaling, which the NIfTI reader would silently change (NaN/Inf to 0), before SimpleITK reads it."""
    path = Path(path)
    if not path.exists():
        raise UserInputError(f"input not found: {path}")
    try:
        if path.is_dir():
            return _read_dicom_series(path)
        check_compressed_stream(path)
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(path))
        reader.ReadImageInformation()
        size = reader.GetSize()
        if len(size) and min(size) == 0:
            raise UserInputError(f"input {path} is empty (size {size})")
        voxels = int(np.prod(size, dtype=np.int64)) * reader.GetNumberOfComponents()
        check_memory(voxels, 4, f"input {path.name} ({' x '.join(map(str, size))} voxels)")
        check_nifti_file(path, f"input {path}")
        return reader.Execute()
    except RuntimeError as error:
        detail = str(error).strip().splitlines()
        reason = next((line.strip() for line in detail if "ERROR" in line or "Unable" in line), "")
        raise UserInputError(f"cannot read {path}: not a readable image{(' (' + reason[:120] + ')') if reason else ''}") from None


def check_compressed_stream(path: Path) -> None:
    """Refuse a truncated or corrupt gzip file (ITK would read it and fill the missing voxels with zeros)."""
    if not path.name.lower().endswith(".gz"):
        return
    import gzip
    import zlib

    try:
        with gzip.open(path, "rb") as stream:
            while stream.read(1 << 24):
                pass
    except (EOFError, OSError, zlib.error):
        raise UserInputError(f"cannot read {path}: the compressed file is truncated or corrupt") from None


def _read_dicom_series(folder: Path) -> sitk.Image:
    series = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder))
    if not series:
        raise UserInputError(f"no DICOM series found in folder {folder}")
    if len(series) > 1:
        raise UserInputError(f"folder {folder} holds {len(series)} DICOM series; give a folder with one")
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder), series[0]))
    reader.MetaDataDictionaryArrayUpdateOn()
    reader.LoadPrivateTagsOff()
    image = reader.Execute()
    if rescale_varies(reader):  # the voxel type follows the first slice, which would truncate the others
        reader.SetOutputPixelType(sitk.sitkFloat64)
        image = reader.Execute()
    for key in reader.GetMetaDataKeys(0):
        image.SetMetaData(key, reader.GetMetaData(0, key))
    return image


RESCALE_TAGS = ("0028|1052", "0028|1053")  # DICOM Rescale Intercept, Rescale Slope


def rescale_varies(reader: sitk.ImageSeriesReader) -> bool:
    """Whether the slices of a DICOM series read by ``reader`` have different rescale slopes or intercepts."""
    values = {tuple(reader.GetMetaData(index, tag).strip() if reader.HasMetaDataKey(index, tag) else ""
                    for tag in RESCALE_TAGS) for index in range(len(reader.GetFileNames()))}
    return len(values) > 1


def check_scalar_volume(image: sitk.Image, what: str = "input", min_slices: int = 1) -> None:
    """Refuse images that are not 3D, not scalar, empty, or hold NaN/Inf voxels."""
    if image.GetDimension() != 3:
        raise UserInputError(f"{what} must be a 3D volume, got a {image.GetDimension()}D image")
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise UserInputError(
            f"{what} must be a scalar volume, got {image.GetNumberOfComponentsPerPixel()} components per voxel"
        )
    size = image.GetSize()
    if min(size) < 1 or np.prod(size) == 0:
        raise UserInputError(f"{what} is empty (size {size})")
    if size[2] < min_slices:
        raise UserInputError(f"{what} has {size[2]} slice(s); at least {min_slices} are needed")
    array = sitk.GetArrayViewFromImage(image)
    if np.issubdtype(array.dtype, np.floating):
        finite = np.isfinite(array)
        if not finite.all():
            bad = int(array.size - finite.sum())
            raise UserInputError(f"{what} holds {bad} NaN or infinite voxel(s); fix or mask them first")
        if np.abs(array).max() > 1e15:
            raise UserInputError(f"{what} holds extreme values (|value| up to {np.abs(array).max():.3g})")


def check_output_path(output: str | os.PathLike, inputs: tuple[str | os.PathLike, ...] = ()) -> Path:
    """Check that an output can be written there and does not overwrite an input."""
    output = Path(output)
    for source in inputs:
        if output.resolve() == Path(source).resolve():
            raise UserInputError(f"output {output} is the input file; choose another output path")
    parent = output if output.is_dir() else output.parent  # a new folder output (DICOM series) needs its parent
    if not parent.exists():
        raise UserInputError(f"output folder does not exist: {parent}")
    if not folder_is_writable(parent):
        raise UserInputError(f"output folder is not writable: {parent}")
    if output.suffix and _suffix(output) not in VOLUME_SUFFIXES:
        raise UserInputError(f"unsupported output format '{output.suffix}' (use one of {', '.join(VOLUME_SUFFIXES)})")
    return output


def folder_is_writable(folder: Path) -> bool:
    """Whether a file can really be created in ``folder`` (a probe, which also holds for root and read-only mounts)."""
    try:
        handle, probe = tempfile.mkstemp(prefix=".write-test-", dir=folder)
    except OSError:
        return False
    os.close(handle)
    os.unlink(probe)
    return True


def write_volume(image: sitk.Image, path: str | os.PathLike, compress: bool = True) -> Path:
    """Write atomically: to a temporary file beside the target, then rename over it."""
    path = Path(path)
    suffix = _suffix(path)
    try:
        handle, temporary = tempfile.mkstemp(prefix=".partial-", suffix=suffix, dir=path.parent)
    except OSError as error:
        raise UserInputError(f"cannot write {path}: {error.strerror}") from None
    os.close(handle)
    try:
        sitk.WriteImage(image, temporary, compress)
        os.replace(temporary, path)
    except RuntimeError as error:
        Path(temporary).unlink(missing_ok=True)
        raise UserInputError(f"cannot write {path}: {str(error).strip().splitlines()[-1][:160]}") from None
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def same_geometry(a: sitk.Image, b: sitk.Image, tolerance: float = 1e-6) -> bool:
    """True when both images share size, spacing, origin and direction."""
    return (
        a.GetSize() == b.GetSize()
        and np.allclose(a.GetSpacing(), b.GetSpacing(), atol=tolerance)
        and np.allclose(a.GetOrigin(), b.GetOrigin(), atol=tolerance)
        and np.allclose(a.GetDirection(), b.GetDirection(), atol=tolerance)
    )
