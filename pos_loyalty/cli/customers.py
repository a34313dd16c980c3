"""``customers import`` and ``customers export`` (CSV)."""
