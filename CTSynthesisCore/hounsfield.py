"""CT numbers both engines agree on."""

import numpy as np

AIR_HU = -1024.0  # what a CT stores for air (and what the engines put outside the body)
STORED_MAX_HU = 3071.0  # the top of the 12-bit range most CTs store (-1024 + 4095)
BODY_ABOVE_HU = -500.0  # "inside the body" in the run reports: CT above this


def spread_text(ct: np.ndarray, spread: np.ndarray) -> str:
    """Median and 95th percentile of a per-voxel spread (uncertainty, disagreement) inside the body, in words."""
    inside = np.asarray(spread)[np.asarray(ct) > BODY_ABOVE_HU]
    if inside.size == 0 or float(inside.max()) <= 0:
        return "none (zero everywhere inside the body)"
    median, top = np.percentile(inside, [50, 95])
    return f"median {median:.0f} HU, 95th percentile {top:.0f} HU inside the body"
