"""SliceInterp engine: raises the between-slice resolution of CT volumes.

No Slicer or Qt imports here; the Slicer module and the ``sliceinterp`` CLI call into it.
"""
