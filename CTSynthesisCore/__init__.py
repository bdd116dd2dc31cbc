"""Code shared by the MRItoCT and SliceInterp engines.

Volume I/O with geometry, device choice, progress and cancellation, verified loading of shipped
weights, CLI plumbing, batch mode, background processes and the job contract live here, once;
``slicer/`` holds the Slicer side (MRML nodes, display, panels, dependencies, jobs over nodes).
"""

from .errors import Cancelled, UserInputError

__all__ = ["Cancelled", "UserInputError"]
