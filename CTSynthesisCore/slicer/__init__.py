"""The Slicer side of the shared code: MRML nodes, display, panel mixins, dependency install, background jobs over nodes."""
