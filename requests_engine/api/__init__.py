"""The controller API at /api/v1/ (DRF): token per controller contact, throttled, one POST per step."""
