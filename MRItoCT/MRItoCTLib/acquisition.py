"""Whether an MRI is what the models were trained for, read from its DICOM header: a T2-weighted spin-echo series
of the pelvis, without fat suppression.

The image alone cannot say this reliably (a T1-weighted head and a T2-weighted pelvis both have a bright and a dark
end), and a wrong input gives a confident, wrong CT; the acquisition header can. Volumes without a header (NIfTI,
NRRD) are not checked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping

if TYPE_CHECKING:
    import SimpleITK as sitk

# DICOM tags ("gggg|eeee", as SimpleITK names them) that tell the acquisition
MODALITY, BODY_PART, SCANNING_SEQUENCE, SCAN_OPTIONS, REPETITION_TIME, ECHO_TIME = (
    "0008|0060", "0018|0015", "0018|0020", "0018|0022", "0018|0080", "0018|0081")
HEADER_TAGS = (MODALITY, BODY_PART, SCANNING_SEQUENCE, SCAN_OPTIONS, REPETITION_TIME, ECHO_TIME)

T2_MIN_ECHO_MS = 60.0  # the training renders use 70-130 ms; T1 and proton-density series use 10-30 ms
T2_MIN_REPETITION_MS = 1500.0  # the renders use 2,500-7,000 ms; T1-weighted series use well under 1,000 ms
PELVIC_BODY_PARTS = ("PELV", "PROSTAT", "HIP", "BLADDER", "RECT", "UTER", "CERVIX")  # Body Part Examined terms


def header_number(value: str | None) -> float | None:
    """The first number of a DICOM decimal string ("100", "100\\110"), or None when it has none."""
    try:
        return float((value or "").split("\\")[0])
    except ValueError:
        return None


def acquisition_warnings(header: Mapping[str, str]) -> list[str]:
    """One sentence per way the DICOM header says the series is not a pelvic T2-weighted spin echo
    (tags missing from ``header`` are not held against it)."""
    warnings = []
    modality = header.get(MODALITY, "").strip().upper()
    if modality and modality != "MR":
        warnings.append(f"the DICOM header says modality {modality}, not MR: the models convert T2-weighted MRI")
    echo, repetition = header_number(header.get(ECHO_TIME)), header_number(header.get(REPETITION_TIME))
    if (echo is not None and echo < T2_MIN_ECHO_MS) or (repetition is not None and repetition < T2_MIN_REPETITION_MS):
        timing = ", ".join(f"{name} {value:g} ms" for name, value in (("TE", echo), ("TR", repetition))
                           if value is not None)
        warnings.append(f"{timing}: not a T2-weighted series (the models were trained for TE {T2_MIN_ECHO_MS:g} ms "
                        f"or more, TR {T2_MIN_REPETITION_MS:g} ms or more); the synthetic CT will be wrong")
    sequence = header.get(SCANNING_SEQUENCE, "").upper().split("\\")
    if sequence != [""] and "SE" not in sequence:
        warnings.append(f"scanning sequence {'/'.join(sequence)}, not spin echo: the models were trained on "
                        "turbo-spin-echo contrast")
    if "IR" in sequence:
        warnings.append("an inversion-recovery series (STIR, FLAIR): a nulled tissue will not look as the models "
                        "expect")
    if "FS" in header.get(SCAN_OPTIONS, "").upper().split("\\"):
        warnings.append("a fat-suppressed series: fat will not look like fat to the models")
    body_part = header.get(BODY_PART, "").strip().upper()
    if body_part and not any(term in body_part for term in PELVIC_BODY_PARTS):
        warnings.append(f"body part {body_part}: the models were trained for the pelvis; elsewhere the HU are "
                        "not to be trusted")
    return warnings


def image_header(image: "sitk.Image") -> dict[str, str]:
    """The acquisition tags a SimpleITK image carries (read from a DICOM series; empty for NIfTI)."""
    return {tag: image.GetMetaData(tag) for tag in HEADER_TAGS if image.HasMetaDataKey(tag)}
