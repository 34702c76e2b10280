"""The pipeline's rollout counts against the δ levels it calibrates at, checked before anything runs and again after
the in-distribution rollouts.

Only the successful in-distribution rollouts calibrate. A count that could not attain a δ even if every one of
them succeeded stops the pipeline before it collects; the successes the in-distribution rollouts gave stop it before
the stress rollouts, instead of at the evaluation or the deploy stage an hour later.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig

from calibration import min_calibration_size
from fiper.evaluation import EvaluationConfig
from fiper.evaluation.splits import calibration_count, required_calibration
from launch.common import plain


def in_distribution_rollouts(cfg: DictConfig) -> tuple[int, int]:
    """(calibration rollouts, in-distribution rollouts the evaluation reads): fit + calibration + the stress 'none' cells."""
    r = cfg.rollouts
    none_cells = sum(len(sevs) for shift, sevs in plain(r.cells) if str(shift) == "none")
    return int(r.calibration_episodes), int(r.fit_episodes) + int(r.calibration_episodes) + none_cells * int(r.seeds_per_cell)


def evaluation_calibration(config: EvaluationConfig, n_id: int) -> tuple[int, int, str, float]:
    """(calibration episodes the evaluation's split leaves from ``n_id`` in-distribution successes, the most any
    (threshold type, δ) of its grid needs, that type, that δ)."""
    s = config.split
    have = calibration_count(s.fit, s.calibration, n_id)
    if config.refit_after_selection:
        have //= 2
    need, kind, delta = required_calibration(config.threshold_types, config.deltas, config.band_d1_fraction,
                                             joint=any(m.joint for m in config.methods.values()))
    return have, need, kind, delta


def _shortfalls(cfg: DictConfig, evaluation: EvaluationConfig | None, calibration_successes: int, n_id: int) -> list[str]:
    """``deploy_delta`` and the evaluation's grid against ``calibration_successes`` and ``n_id`` in-distribution
    successes in all: one sentence per level they cannot attain, with the counts that would."""
    calibration, problems = int(cfg.rollouts.calibration_episodes), []
    if cfg.get("deploy_delta") is not None:
        need, kind = min_calibration_size(float(cfg.deploy_delta)), "constant"
        if evaluation is not None:  # the deployed monitor is the evaluation's choice: any of its threshold types may be it
            need, kind, _ = required_calibration(evaluation.threshold_types, [float(cfg.deploy_delta)],
                                                 evaluation.band_d1_fraction, joint=any(m.joint for m in evaluation.methods.values()))
        if calibration_successes < need:
            episodes = -(-need * calibration // max(calibration_successes, 1))  # at the success rate seen
            problems.append(f"deploy_delta={cfg.deploy_delta:g} needs {need} calibration successes for the {kind} thresholds "
                            f"the evaluation may choose: raise rollouts.calibration_episodes to at least {episodes}, or "
                            "deploy_delta (null skips the deploy stage)")
    if evaluation is not None:
        have, need, kind, delta = evaluation_calibration(evaluation, n_id)
        if have < need:
            joint = any(m.joint for m in evaluation.methods.values())
            attained = [d for d in evaluation.deltas
                        if required_calibration(evaluation.threshold_types, [d], evaluation.band_d1_fraction, joint=joint)[0] <= have]
            keep = f"evaluate.deltas=[{','.join(f'{d:g}' for d in attained)}]" if attained else "larger evaluate.deltas"
            problems.append(f"the evaluation's {kind} thresholds at δ={delta:g} need {need} calibration successes, but its split "
                            f"leaves at most {have} of {n_id} in-distribution successes (fit, calibration and the stress "
                            "rollouts' 'none' cells): raise rollouts.fit_episodes, calibration_episodes or seeds_per_cell, "
                            f"evaluate.split.calibration, or keep {keep}")
    return problems


def check_sizes(cfg: DictConfig, monitor: Mapping[str, Any], evaluation: EvaluationConfig | None) -> None:
    """Refuse rollout counts that no success rate could make enough for the live monitor's δ, the evaluation's grid
    or the deploy δ, naming each and the settings that fix it."""
    calibration, n_id = in_distribution_rollouts(cfg)
    problems = []
    kind, joint = str(monitor.get("threshold_type", "constant")), bool(monitor.get("joint"))
    need = required_calibration([kind], [float(monitor["delta"])], 0.5, joint=joint)[0]
    if calibration < need:
        problems.append(f"the live monitor ({kind} thresholds{', joint' if joint else ''}) at monitor.delta={monitor['delta']:g} "
                        f"needs {need} calibration successes: raise rollouts.calibration_episodes to at least {need}, or "
                        "monitor.delta")
    problems += _shortfalls(cfg, evaluation, calibration, n_id)
    if problems:
        raise ValueError(f"too few rollouts even if every in-distribution rollout succeeded ({calibration} calibration "
                         f"rollouts, {n_id} in distribution in all): " + "; ".join(problems)
                         + ". A policy that fails sometimes needs more; nothing has run yet")


WEAK_POLICY = 0.3  # in-distribution success rate under which the stop also says to train the policy better


def check_recorded_successes(cfg: DictConfig, evaluation: EvaluationConfig | None, fit_successes: int, calibration_successes: int) -> None:
    """After the in-distribution rollouts, their successes against ``deploy_delta`` and the evaluation's grid (the stress
    'none' rollouts counted at the success rate seen): a count that falls short stops the pipeline before the stress
    rollouts, naming the rollouts the policy's success rate asks for."""
    calibration, n_planned = in_distribution_rollouts(cfg)
    none_rollouts = n_planned - int(cfg.rollouts.fit_episodes) - calibration
    rate = (fit_successes + calibration_successes) / max(int(cfg.rollouts.fit_episodes) + calibration, 1)
    none_successes = int(none_rollouts * rate)  # rounded down: the evaluation after the stress rollouts must not fall short
    problems = _shortfalls(cfg, evaluation, calibration_successes, fit_successes + calibration_successes + none_successes)
    if problems and rate < WEAK_POLICY:  # more rollouts of a policy that rarely succeeds calibrate a monitor of little use
        problems.append(f"or, as the policy succeeds on only {rate:.0%} of its in-distribution rollouts, train a better one "
                        "first (more train.steps or collect.n_episodes, another train.policy: docs/policies.md); a monitor "
                        "learns what success looks like from its successes")
    if problems:
        raise ValueError(f"the in-distribution rollouts gave {fit_successes} of {cfg.rollouts.fit_episodes} fit and "
                         f"{calibration_successes} of {calibration} calibration successes "
                         f"({calibration_successes / max(calibration, 1):.0%}): " + "; ".join(problems)
                         + ". The pipeline stopped before the stress rollouts; the stages before them are cached")
