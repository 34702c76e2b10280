"""MJCF models of the fiper tasks (package data, read with importlib.resources)."""
