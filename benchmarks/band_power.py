"""Validity and power of the functional band on short, variable-length rollouts: ended D1 rollouts
dropped (the published band) against held at their last value (fiper's default).

Run: .venv/bin/python -m benchmarks.band_power [--draws 20000] [--demo runs/demo]
Prints, per delta and mode, the empirical false-alarm rate on new successful rollouts (with its
standard error), the detection rate of drifting failures, and the median height h and band peak;
with --demo also the same band fitted on a pipeline run's calibration rollouts (its live monitor's
scores) and measured on its stress rollouts. The figures are recorded in docs/calibration.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from calibration import ENDED_MODES, band_nonconformity, band_shape, conformal_quantile, fit_band
from calibration.rollouts import step_mask
from fiper.aggregation import windowed_sum

#: Decision counts of the demo's successful calibration rollouts (pick-and-place, 6..12 decisions).
DEMO_LENGTHS = {5: 1, 6: 3, 7: 4, 8: 15, 9: 36, 10: 33, 11: 2, 12: 2}


def short_lengths(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Rollout lengths drawn from the demo's calibration lengths (mostly 8-10, rarely 11-12)."""
    values = np.array(list(DEMO_LENGTHS), dtype=np.int64)
    weights = np.array(list(DEMO_LENGTHS.values()), dtype=np.float64)
    return rng.choice(values, size=shape, p=weights / weights.sum())


def short_rollouts(rng: np.random.Generator, shape: tuple[int, ...], *, window: int = 3, drift: float = 0.0,
                   steps: int = max(DEMO_LENGTHS)) -> tuple[np.ndarray, np.ndarray]:
    """Windowed positive AR(1) score traces (*shape, T) (0 past the length) and lengths (*shape).

    Each rollout: a per-rollout offset, a shared rise over the episode, AR(1) noise. ``drift`` > 0
    makes failures: from a random onset in the first half the log-score rises by ``drift`` per decision.
    """
    lengths = short_lengths(rng, shape)
    eps = rng.standard_normal((*shape, steps))
    z = np.empty_like(eps)
    z[..., 0] = eps[..., 0]
    for t in range(1, steps):
        z[..., t] = 0.7 * z[..., t - 1] + np.sqrt(1 - 0.7**2) * eps[..., t]
    t = np.arange(steps)
    log = 0.4 * z + 0.3 * rng.standard_normal((*shape, 1)) + 0.05 * t
    if drift:
        onset = rng.integers(1, np.maximum(lengths // 2, 2))[..., None]
        log = log + drift * np.maximum(t - onset, 0)
    raw = np.exp(log)
    eta = windowed_sum(raw.reshape(-1, steps), window, lengths.reshape(-1)).reshape(raw.shape)
    return np.where(step_mask(lengths, steps), eta, 0.0), lengths


def batched_band(cal: np.ndarray, cal_mask: np.ndarray, delta: float, ended: str) -> tuple[np.ndarray, np.ndarray]:
    """fit_band's construction on (..., M, T) calibration sets at once, D1 = the first half (the
    rollouts are i.i.d., so any fixed half is a random split): gamma (..., T) and height h (...)."""
    n1 = cal.shape[-2] // 2
    mu, s = band_shape(cal[..., :n1, :], cal_mask[..., :n1, :], delta, ended=ended)
    h = conformal_quantile(band_nonconformity(cal[..., n1:, :], cal_mask[..., n1:, :], mu, s), delta)
    h = np.asarray(h)
    return mu + h[..., None] * s, h


def any_alarm(eta: np.ndarray, mask: np.ndarray, gamma: np.ndarray) -> np.ndarray:
    """(..., K) whether each test rollout crosses its draw's band gamma (..., T) at some alive step."""
    return ((eta > gamma[..., None, :]) & mask).any(axis=-1)


def simulate(draws: int, delta: float, ended: str, *, num_cal: int = 40, num_test: int = 10, seed: int = 0) -> dict[str, float]:
    """False-alarm rate (and SE over draws), detection rate, h and band peak (median, 99th percentile) over ``draws`` calibration sets."""
    rng = np.random.default_rng(seed)
    cal, cal_len = short_rollouts(rng, (draws, num_cal))
    ok, ok_len = short_rollouts(rng, (draws, num_test))
    bad, bad_len = short_rollouts(rng, (draws, num_test), drift=0.25)
    steps = cal.shape[-1]
    gamma, h = batched_band(cal, step_mask(cal_len, steps), delta, ended)
    false_alarm = any_alarm(ok, step_mask(ok_len, steps), gamma).mean(axis=-1)
    detected = any_alarm(bad, step_mask(bad_len, steps), gamma).mean(axis=-1)
    return {"false_alarm": float(false_alarm.mean()), "se": float(false_alarm.std(ddof=1) / np.sqrt(draws)),
            "detection": float(detected.mean()), "height": float(np.median(h)), "vacuous": float((h > 10).mean()), "height_p99": float(np.quantile(h, 0.99)),
            "peak": float(np.median(gamma.max(axis=-1))), "peak_p99": float(np.quantile(gamma.max(axis=-1), 0.99))}


def demo_figures(run: Path, deltas: list[float], windows: list[int]) -> list[str]:
    """The band drop vs hold on a pipeline run: fitted on its calibration rollouts (scored by its
    monitor), measured on its stress rollouts (FAR on in-distribution successes, TPR on failures)."""
    from fiper.monitor.artifact import load_monitor
    from fiper.monitor.padding import to_padded
    from fiper.storage import EpisodeStore

    monitor = load_monitor(run / "monitor")

    def padded(store_path: Path):
        store = EpisodeStore.open(store_path)
        emb, smp = store.read_decisions("embedding"), store.read_decisions("samples")
        raw = monitor.score_offline(emb, smp, store.decision_ends)
        meta = {k: store.meta(k) for k in ("success", "shift")}
        return {n: to_padded(v, store.decision_ends) for n, v in raw.items()}, meta

    cal, cal_meta = padded(run / "id_calibration.zarr")
    keep = cal_meta["success"].astype(bool) & (cal_meta["shift"].astype(str) == "none")
    test, test_meta = padded(run / "stress.zarr")
    ok = test_meta["success"].astype(bool) & (test_meta["shift"].astype(str) == "none")
    failed = ~test_meta["success"].astype(bool)
    lines = [(f"{run}: {int(keep.sum())} calibration successes, test: {int(ok.sum())} in-distribution successes, "
                f"{int(failed.sum())} failures")]
    for name in monitor.names:
        (cx, clen), (tx, tlen) = cal[name], test[name]
        for w in windows:
            ceta = windowed_sum(cx[keep], w, clen[keep])
            teta = windowed_sum(tx, w, tlen)
            tmask = step_mask(tlen, tx.shape[1])
            for delta in deltas:
                parts = []
                for ended in ENDED_MODES:
                    th = fit_band(ceta, clen[keep], delta, ended=ended)
                    gamma = th.values(tx.shape[1])
                    alarm = ((teta > gamma) & tmask).any(axis=1)
                    parts.append(f"{ended}: h {th.params['height']:7.2f}, peak {gamma.max():8.2f}, "
                                 f"FAR-ID {alarm[ok].mean():.3f}, TPR {alarm[failed].mean():.3f}")
                lines.append(f"  {name:8s} w={w:<2d} delta={delta:.2f}  " + " | ".join(parts))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=20000, help="independent calibration/test draws per setting")
    parser.add_argument("--demo", type=Path, default=None, help="a pipeline run directory (monitor/, id_calibration.zarr, stress.zarr)")
    args = parser.parse_args()
    print(f"synthetic: {args.draws} draws of M=40 calibration + 10 successful + 10 failing rollouts, "
          f"lengths as the demo's calibration rollouts (5-12 decisions), window 3")
    for delta in (0.05, 0.1):
        for ended in ENDED_MODES:
            r = simulate(args.draws, delta, ended)
            print(f"  delta={delta:.2f} {ended:4s}: false alarms {r['false_alarm']:.4f} +- {r['se']:.4f}, "
                  f"detected failures {r['detection']:.3f}, h median {r['height']:.2f} / 99th pct {r['height_p99']:.1f}, "
                  f"band peak median {r['peak']:.2f} / 99th pct {r['peak_p99']:.1f}, draws with h > 10: {r['vacuous']:.3f}")
    if args.demo is not None:
        print("\n".join(demo_figures(args.demo, [0.05, 0.1], [1, 3, 5])))


if __name__ == "__main__":
    main()
