"""Speed of calibration fits, windowed aggregation (offline and online) and metrics.

Run: .venv/bin/python -m benchmarks.calibration_aggregation
Prints one line per figure; the figures are recorded in docs/benchmarks.md.
"""

from __future__ import annotations

import time

import numpy as np

from calibration import fit_band, fit_constant, fit_time_varying
from fiper.aggregation import OnlineAlarm, WindowedSum, evaluate_alarms, windowed_sum
from fiper.evaluation import auroc, detection_metrics


def _best(fn, repeat: int = 5) -> float:
    """Best wall time of ``repeat`` runs, seconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    rng = np.random.default_rng(0)
    num, steps = 1000, 300
    scores = rng.gamma(2.0, size=(num, steps))
    lengths = rng.integers(steps // 2, steps + 1, num)
    windows = [5, 10, 25, 50, 100]

    t = _best(lambda: windowed_sum(scores, windows, lengths))
    print(f"offline windowed_sum, {num} rollouts x {steps} steps x {len(windows)} windows: "
          f"{t * 1e3:.1f} ms ({num * steps * len(windows) / t / 1e6:.0f} M sums/s)")

    acc = WindowedSum(50)
    n_online = 100_000
    t = _best(lambda: [acc.update(v) for v in scores.reshape(-1)[:n_online]], repeat=3)
    print(f"online WindowedSum.update: {t / n_online * 1e6:.2f} us per decision")

    eta = windowed_sum(scores[:50], 25, lengths[:50])
    for name, fit in (("constant", fit_constant), ("band", fit_band), ("time_varying", fit_time_varying)):
        t = _best(lambda: fit(eta, lengths[:50], 0.1))
        print(f"fit_{name}, M=50 x {steps} steps: {t * 1e3:.2f} ms")

    ths = {"a": fit_band(eta, lengths[:50], 0.1), "b": fit_constant(eta, lengths[:50], 0.1)}
    alarm = OnlineAlarm(ths, {"a": 25, "b": 25}, "and")
    n_steps = 20_000
    t = _best(lambda: [alarm.step({"a": v, "b": v}) for v in scores.reshape(-1)[:n_steps]], repeat=3)
    print(f"OnlineAlarm.step (2 indicators, AND): {t / n_steps * 1e6:.1f} us per decision")

    raw = {"a": scores, "b": scores[::-1]}
    t = _best(lambda: evaluate_alarms(raw, {"a": 25, "b": 50}, ths, lengths, "and"))
    print(f"evaluate_alarms offline, {num} rollouts x {steps} steps, 2 indicators: {t * 1e3:.1f} ms")

    trace = evaluate_alarms(raw, {"a": 25, "b": 50}, ths, lengths, "and")
    failed = rng.random(num) < 0.5
    grid = np.repeat(trace.first_alarm[None], 10, axis=0)
    t = _best(lambda: (detection_metrics(grid, failed, lengths), auroc(np.repeat(trace.max_ratio[None], 10, 0), failed)))
    print(f"detection_metrics + auroc, 10 deltas x {num} rollouts: {t * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
