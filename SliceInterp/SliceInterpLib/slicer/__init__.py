"""The MRML node level of SliceInterp and its Slicer self-test scenarios (imports slicer)."""
