"""The MRML node level of MRItoCT and its Slicer self-test scenarios (imports slicer)."""
