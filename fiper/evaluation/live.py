"""How the monitor that ran live during recording did: section-7 metrics of its recorded alarms.

Stores recorded by ``launch.stress monitor_dir=...`` carry each episode's first live alarm. Over
those episodes (grouped by monitor directory) this gives TPR, TNR, accuracy, TWA, FAR on
in-distribution successes and the lead time, with the definitions the offline rows use, so a
deployed monitor (e.g. one fitted from ``monitor_<task>.yaml``) can be checked against the
numbers its evaluation predicted. Those episodes never served the live monitor's fit or
calibration when, as in the pipeline, its fit and calibration rollouts are recorded unmonitored.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fiper.evaluation.metrics import metric_summary
from fiper.evaluation.records import padded_env_steps, with_far_id
from fiper.evaluation.rollouts import RolloutSet
from fiper.monitor.artifact import read_monitor_config


def monitor_summary(directory: str) -> tuple[str, float | None]:
    """('rule, kind (joint) δ=…', δ) of a saved monitor; ('', None) when it is not readable from here."""
    try:
        config = read_monitor_config(directory)
    except (OSError, ValueError):
        return "", None
    thresholds = list((config.get("thresholds") or {}).values())
    if not thresholds:
        return config.get("rule", ""), None
    joint = (config.get("extra", {}).get("calibrate") or {}).get("joint")
    delta = float(thresholds[0]["delta"])
    return f"{config['rule']}, {thresholds[0]['kind']}{' (joint)' if joint else ''}, δ={delta:g}", delta


def live_results(rollouts: RolloutSet) -> list[dict[str, Any]]:
    """One dict per live monitor (in order of appearance) with the metrics of its recorded alarms."""
    monitors = [m for m in dict.fromkeys(rollouts.live_monitor.tolist()) if m]
    if not monitors:
        return []
    env_steps, max_decisions = padded_env_steps(rollouts), int(rollouts.lengths.max())
    out = []
    for monitor in monitors:
        idx = np.flatnonzero(rollouts.live_monitor == monitor)
        failed = rollouts.failed[idx]
        report = with_far_id(metric_summary(
            rollouts.live_alarm_decision[idx], None, failed, rollouts.lengths[idx], ood=rollouts.ood[idx],
            failure_step=rollouts.failure_step[idx], env_steps=env_steps[idx], control_period=rollouts.control_period_s,
            max_decisions=max_decisions, failure_reason=rollouts.failure_reason[idx]))
        setting, delta = monitor_summary(monitor)
        out.append({"monitor": monitor, "setting": setting, "delta": delta, "episodes": int(idx.size), "failures": int(failed.sum()),
                    **{k: float(report[k]) for k in ("tpr", "tnr", "accuracy", "twa", "dt", "far_id", "far_id_se",
                                                      "lead_fraction_before_onset", "lead_median_warning_s")},
                    "with_onset": int(report["lead_n_with_onset"]), "timeouts": int(report["lead_n_timeout"]),
                    "timeouts_flagged": int(report["lead_n_timeout_flagged"]),
                    "far_id_n": int(report["success_id_n"]), "far_id_flagged": int(report["success_id_flagged"])})
    return out
