"""SliceInterp engine: raises the between-slice resolution of CT volumes.

The package root is the engine (what ``upsample`` needs, including test-time adaptation, the ``sliceinterp``
CLI and the background worker); ``research/`` trains and evaluates models; ``slicer/`` is the node level used
by the Slicer module. The layering rules are in ARCHITECTURE.md.
"""
