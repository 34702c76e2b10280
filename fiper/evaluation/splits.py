"""Seeded episode split: fit / calibration from ID successes only; validation / test stratified.

In-distribution successes (shift == 'none' and success) are shuffled and cut into the fit share
(score models), the calibration share (thresholds) and a hold-out share. The hold-out share and
every other episode (failures, OOD successes) are divided into validation and test within each
of the four strata success x ID/OOD. Each stratum draws its own random stream from (seed,
stratum), so the split of one stratum does not depend on the size of another.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from calibration import InsufficientCalibrationError, min_band_size, min_calibration_size

PARTS = ("fit", "calibration", "validation", "test")
STRATA = ("success_id", "success_ood", "fail_id", "fail_ood")


def _count(fraction: float, n: int) -> int:
    """round(fraction * n) with halves rounded up (deterministic, unlike banker's rounding)."""
    return int(np.floor(fraction * n + 0.5))


def calibration_count(fit: float, calibration: float, n: int) -> int:
    """How many of ``n`` in-distribution successes the split gives to calibration (after the fit part)."""
    return min(_count(calibration, n), n - _count(fit, n))


@dataclass(frozen=True)
class Split:
    """Sorted episode indices of the four disjoint parts."""

    fit: np.ndarray
    calibration: np.ndarray
    validation: np.ndarray
    test: np.ndarray

    def part(self, name: str) -> np.ndarray:
        if name not in PARTS:
            raise KeyError(f"unknown split part {name!r}; expected one of {PARTS}")
        return getattr(self, name)

    def sizes(self, success: np.ndarray, ood: np.ndarray) -> dict[str, dict[str, int]]:
        """Episodes per part and stratum, e.g. sizes['test']['fail_ood']."""
        groups = _strata(np.asarray(success, bool), np.asarray(ood, bool))
        out = {}
        for name in PARTS:
            idx = self.part(name)
            out[name] = {"total": int(idx.size), **{s: int(np.isin(idx, members).sum()) for s, members in groups.items()}}
        return out


def _strata(success: np.ndarray, ood: np.ndarray) -> dict[str, np.ndarray]:
    masks = (success & ~ood, success & ood, ~success & ~ood, ~success & ood)
    return {name: np.flatnonzero(m) for name, m in zip(STRATA, masks)}


def split_episodes(success, ood, *, fit: float = 0.4, calibration: float = 0.4, validation: float = 0.5, seed: int = 0) -> Split:
    """Split episodes by their labels (see the module docstring); fractions as in SplitConfig."""
    success, ood = np.asarray(success, dtype=bool), np.asarray(ood, dtype=bool)
    if success.shape != ood.shape or success.ndim != 1:
        raise ValueError(f"success and ood must be (E,) label arrays of equal shape, got {success.shape} and {ood.shape}")
    groups = _strata(success, ood)
    parts: dict[str, list[np.ndarray]] = {p: [] for p in PARTS}
    for k, name in enumerate(STRATA):
        members = np.random.default_rng([int(seed), k]).permutation(groups[name])
        if name == "success_id":
            n_fit = _count(fit, members.size)
            n_cal = calibration_count(fit, calibration, members.size)
            parts["fit"].append(members[:n_fit])
            parts["calibration"].append(members[n_fit : n_fit + n_cal])
            members = members[n_fit + n_cal :]
        n_val = _count(validation, members.size)
        parts["validation"].append(members[:n_val])
        parts["test"].append(members[n_val:])
    out = {p: np.sort(np.concatenate(v)).astype(np.int64) for p, v in parts.items()}
    if out["fit"].size == 0:
        raise InsufficientCalibrationError(
            f"no episodes to fit the score models on: {groups['success_id'].size} in-distribution successes, "
            f"split.fit={fit:g}; record more successful rollouts without shift"
        )
    return Split(**out)


def required_calibration(kinds, deltas, d1_fraction: float, *, joint: bool = False) -> tuple[int, str, float]:
    """The most calibration episodes any (threshold type, delta) of the grid needs: (n, kind, delta).

    ``joint``: some method calibrates jointly, which splits constant thresholds' rollouts like the band's.
    """
    best = (0, "", 0.0)
    for kind in kinds:
        for delta in deltas:
            split_kind = kind == "band" or (joint and kind == "constant")
            need = min_band_size(delta, d1_fraction) if split_kind else min_calibration_size(delta)
            if need > best[0]:
                best = (need, f"{kind} (joint calibration)" if split_kind and kind == "constant" else kind, float(delta))
    return best


def calibration_halves(calibration: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(selection half, final half) of the calibration episodes, seeded, sorted; the final half
    gets the extra episode of an odd count (refit_after_selection)."""
    members = np.random.default_rng([int(seed), len(STRATA)]).permutation(np.asarray(calibration, dtype=np.int64))
    k = members.size // 2
    return np.sort(members[:k]), np.sort(members[k:])


def check_calibration_size(task: str, n_id_success: int, split: Split, kinds, deltas, *, calibration: float, d1_fraction: float,
                           joint: bool = False, halves: bool = False) -> None:
    """Raise InsufficientCalibrationError naming the minimum numbers when the grid is unattainable.
    ``halves``: thresholds are fitted on each half of the calibration split (refit_after_selection)."""
    need, kind, delta = required_calibration(kinds, deltas, d1_fraction, joint=joint)
    usable = (lambda n: n // 2) if halves else (lambda n: n)
    have = usable(int(split.calibration.size))
    if have >= need:
        return
    n_total = need
    while usable(_count(calibration, n_total)) < need:
        n_total += 1
    where = "in each half of" if halves else "in"
    attainable = ",".join(f"{float(d):g}" for d in deltas if required_calibration(kinds, [d], d1_fraction, joint=joint)[0] <= have)
    if attainable:
        keep = f" With {have} the grid attains deltas=[{attainable}] (launch.pipeline: evaluate.deltas=[{attainable}])"
    else:
        smallest = next((d for d in np.round(np.arange(0.01, 0.501, 0.01), 2)
                         if required_calibration(kinds, [d], d1_fraction, joint=joint)[0] <= have), None)
        keep = f" With {have} no delta of the grid is attainable" + (
            f"; the smallest that is, to try the path: deltas=[{smallest:g}] (launch.pipeline: evaluate.deltas=[{smallest:g}])"
            if smallest is not None else "; none up to 0.5 either: record more successful in-distribution rollouts")
    raise InsufficientCalibrationError(
        f"task {task!r}: {have} calibration episodes {where} the calibration split ({calibration:.0%} of {n_id_success} "
        f"in-distribution successes), but threshold type {kind!r} at delta={delta:g} needs at least {need} calibration episodes, i.e. at least "
        f"{n_total} successful in-distribution rollouts with split.calibration={calibration:g}. Record more, raise "
        "split.calibration, or drop the smallest deltas / the band threshold from the grid"
        + (" (or set refit_after_selection=false, which fits on the whole calibration split)." if halves else ".") + keep + "."
    )
