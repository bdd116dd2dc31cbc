"""MRItoCT engine: conditional diffusion that turns a T2-weighted pelvis MRI into a synthetic CT.

The package root is the engine (what ``synthesize`` needs, the ``mritoct`` CLI and the background worker);
``research/`` trains and evaluates models; ``slicer/`` is the node level used by the Slicer module.
The layering rules are in ARCHITECTURE.md.
"""
