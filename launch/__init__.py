"""Hydra entry points: thin compositions of library calls."""

from fiper.env_factory import default_offscreen_gl

default_offscreen_gl()  # before any entry point imports mujoco: a user's env that renders works headless
