"""The hip-bone check (MRItoCTLib.anatomy) on real volumes: on CTs directly (their own bone) and on MRIs through a
model (its synthetic CT), how many axial slices show thick bone on both sides of the midline, and whether the run
would warn.

    python benchmarks/mritoct_hip_check.py --ct ct_abdomen_pelvis_3mm OTHER_CT.nii.gz --mri t2_pelvis mr_abdomen
"""

from __future__ import annotations

import argparse

import numpy as np
import SimpleITK as sitk

from CTSynthesisCore.tables import markdown_table
from MRItoCTLib.anatomy import anatomy_warnings, hip_bone_slices
from MRItoCTLib.catalog import DEFAULT_MODEL
from MRItoCTLib.model import load_model
from MRItoCTLib.pipeline import synthesize
from MRItoCTLib.settings import SynthesisSettings
from mritoct_montage import read_input


def hip_row(name: str, source: str, ct: sitk.Image) -> list[str]:
    """One table row: the volume, what was checked, its slices, the slices showing hip bones, the warning."""
    axial = sitk.DICOMOrient(ct, "LPS")
    hu = sitk.GetArrayFromImage(axial).astype(np.float32)
    spacing = axial.GetSpacing()[:2]
    return [name, source, str(len(hu)), str(hip_bone_slices(hu, spacing)),
            "yes" if anatomy_warnings(hu, spacing) else "no"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ct", nargs="*", default=[], help="CTs checked as they are (bundled sample names or files)")
    parser.add_argument("--mri", nargs="*", default=[], help="MRIs checked through the model's synthetic CT")
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--mc", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rows = [hip_row(name, "the CT itself", read_input(name)[0]) for name in args.ct]
    if args.mri:
        model = load_model(args.model)
        settings = SynthesisSettings(mc=args.mc, seed=args.seed)
        for name in args.mri:
            result = synthesize(read_input(name)[0], model, settings, device="cpu")
            rows.append(hip_row(name, f"synthetic CT ({args.model})", result.ct))
    print(markdown_table(["volume", "checked", "slices", "slices showing hip bones", "warning"], rows))


if __name__ == "__main__":
    main()
