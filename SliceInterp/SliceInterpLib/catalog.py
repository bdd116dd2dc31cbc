"""What the panel, the CLI and the engine agree on without importing torch or SimpleITK: the
interpolation methods and their titles, and the default settings of an interpolation.

Imports only the standard library, so the Slicer panel can open before PyTorch is installed.
"""

from __future__ import annotations

NETWORK_METHOD = "crossview"
CLASSICAL_METHODS = ("linear", "cubic", "sinc")
METHODS = (NETWORK_METHOD, *CLASSICAL_METHODS)
METHOD_TITLES = {
    "crossview": "Cross-view network (paper 2)",
    "linear": "Linear",
    "cubic": "Cubic B-spline",
    "sinc": "Windowed sinc",
}
DEFAULT_METHOD = NETWORK_METHOD
DEFAULT_MODEL = "sliceinterp-crossview"
DEFAULT_FACTOR = 2
CPU_BATCH_SIZE = 16  # cross-view images per network pass on CPU
DEFAULT_SEED = 0
DEFAULT_ADAPT_MINUTES = 2.0  # the time budget of test-time adaptation
SAMPLE = "ct_chest_thick_4p5mm"  # the module's Sample Data: a thick-slice CT that is not a training volume
