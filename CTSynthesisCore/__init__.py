"""Code shared by the MRItoCT and SliceInterp engines.

Volume I/O with geometry, MRML node conversion, device choice, progress and
cancellation, and verified loading of shipped weights live here, once.
"""

from .errors import Cancelled, UserInputError

__all__ = ["Cancelled", "UserInputError"]
