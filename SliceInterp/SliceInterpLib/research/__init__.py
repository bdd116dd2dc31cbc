"""Training and evaluation of SliceInterp's cross-view model (never needed to interpolate)."""
