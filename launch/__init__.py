"""Hydra entry points: thin compositions of library calls."""

import sys

from fiper.env_factory import default_offscreen_gl

default_offscreen_gl()  # before any entry point imports mujoco: a user's env that renders works headless

if sys.argv[:1] == ["-m"]:  # python -m launch.<entry point>: its sweep's launcher is checked before hydra reads it
    from launch.validate import check_launcher_plugin

    check_launcher_plugin(sys.argv[1:])
