"""``demo``: a believable demo shop."""
