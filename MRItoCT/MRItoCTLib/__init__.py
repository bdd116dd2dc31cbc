"""MRItoCT engine: conditional diffusion that turns a T2-weighted pelvis MRI into a synthetic CT.

No Slicer or Qt imports here; the Slicer module and the ``mritoct`` CLI call into it.
"""
