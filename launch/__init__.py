"""Hydra entry points: thin compositions of library calls."""
