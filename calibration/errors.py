"""Errors raised by conformal calibration and threshold artifacts."""


class InsufficientCalibrationError(ValueError):
    """The requested level delta is unattainable with this many calibration rollouts."""


class ThresholdFileError(ValueError):
    """A threshold artifact is missing, foreign, corrupt, or of an unsupported version."""
