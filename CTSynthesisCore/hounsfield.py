"""CT numbers both engines agree on."""

AIR_HU = -1024.0  # what a CT stores for air (and what the engines put outside the body)
STORED_MAX_HU = 3071.0  # the top of the 12-bit range most CTs store (-1024 + 4095)
