"""Conformal calibration of failure-score thresholds (pure numpy).

Finite-sample corrected quantiles; constant, functional-band and time-varying thresholds fitted
on the windowed scores of successful rollouts; json threshold artifacts. See docs/calibration.md.
"""

from calibration.artifact import load_threshold, save_threshold, threshold_from_dict, threshold_to_dict
from calibration.band import ENDED_MODES, band_center, band_modulation, band_nonconformity, band_shape
from calibration.errors import InsufficientCalibrationError, ThresholdFileError
from calibration.fit import (
    band_split,
    fit_band,
    fit_constant,
    fit_threshold,
    fit_threshold_grid,
    fit_time_varying,
    min_band_size,
    rollout_maxima,
)
from calibration.joint import JOINT_KINDS, JOINT_RULES, fit_joint
from calibration.quantile import check_delta, conformal_quantile, conformal_rank, min_calibration_size
from calibration.rollouts import check_rollouts, pad_rollouts, step_mask
from calibration.thresholds import THRESHOLD_KINDS, Threshold

__all__ = [
    "ENDED_MODES",
    "JOINT_KINDS",
    "JOINT_RULES",
    "THRESHOLD_KINDS",
    "InsufficientCalibrationError",
    "Threshold",
    "ThresholdFileError",
    "band_center",
    "band_modulation",
    "band_nonconformity",
    "band_shape",
    "band_split",
    "check_delta",
    "check_rollouts",
    "conformal_quantile",
    "conformal_rank",
    "fit_band",
    "fit_constant",
    "fit_joint",
    "fit_threshold",
    "fit_threshold_grid",
    "fit_time_varying",
    "load_threshold",
    "min_band_size",
    "min_calibration_size",
    "pad_rollouts",
    "rollout_maxima",
    "save_threshold",
    "step_mask",
    "threshold_from_dict",
    "threshold_to_dict",
]
