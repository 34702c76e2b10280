"""Registry of shift families; importing this package registers all of them."""

from envs.shifts import physical, signals, visual  # noqa: F401  (registration side effect)
from envs.shifts.base import SHIFTS, Shift, ShiftList, parse_shifts, register_shift, shift_label, shift_rng

__all__ = ["SHIFTS", "Shift", "ShiftList", "parse_shifts", "register_shift", "shift_label", "shift_rng"]
