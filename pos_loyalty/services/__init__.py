"""Use cases: each one a function taking the shop context and plain values, one transaction each."""
