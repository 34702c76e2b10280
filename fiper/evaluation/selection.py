"""Choose a method's window on the validation episodes only.

Each candidate is scored by the configured criterion averaged over the delta grid (balanced
accuracy by default); ties go to the higher mean TWA, then to the earlier candidate (smaller
windows come first in the configured order). NaN (e.g. no failures in validation) ranks last.
"""

from __future__ import annotations

import numpy as np

from fiper.evaluation.config import CRITERIA
from fiper.evaluation.grid import CandidateAlarms
from fiper.evaluation.metrics import detection_metrics
from fiper.evaluation.ranking import auroc


def criterion_values(alarms: CandidateAlarms, failed: np.ndarray, lengths: np.ndarray, max_decisions: int) -> dict[str, np.ndarray]:
    """Per candidate (C,): balanced accuracy, TWA, AUROC and their accuracy-TWA mean, each averaged
    over the delta grid."""
    m = detection_metrics(alarms.first_alarm, failed, lengths, max_decisions)
    per_delta = {"accuracy": np.asarray(m.accuracy, float), "twa": np.asarray(m.twa, float),
                 "auroc": np.asarray(auroc(alarms.max_ratio, failed), float)}
    values = {name: v.reshape(v.shape[0], -1).mean(axis=1) for name, v in per_delta.items()}
    values["accuracy_twa"] = 0.5 * (values["accuracy"] + values["twa"])  # how many failures, and how early
    return values


def choose_candidate(values: dict[str, np.ndarray], criterion: str = "accuracy") -> int:
    """Index of the best candidate: highest criterion, then highest TWA, then the first."""
    if criterion not in CRITERIA:
        raise ValueError(f"selection criterion {criterion!r} unknown; expected one of {CRITERIA}")

    def key(name: str) -> np.ndarray:
        v = np.round(np.asarray(values[name], dtype=np.float64), 12)  # equal up to float noise -> a tie
        return np.where(np.isnan(v), -np.inf, v)

    primary, secondary = key(criterion), key("twa")
    order = np.lexsort((np.arange(primary.size), -secondary, -primary))
    return int(order[0])
