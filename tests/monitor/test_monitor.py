"""FailureMonitor: online == offline, artifact round trip, fail-safe alarms, shape checks."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fiper.monitor import FailureMonitor, MonitorNotCalibratedError, PolicyIdentity, load_monitor, save_monitor
from fiper.monitor.fitting import fit_monitor
from fiper.scores.base import ScoreFitData

B, H, A, D = 16, 8, 2, 12
IDENTITY = PolicyIdentity(embedding_dim=D, num_samples=B, horizon=H, action_dim=A, n_action_steps=4, name="toy")
SCORES = {
    "rnd_oe": {"score": "rnd_oe", "target_widths": [32, 32], "predictor_widths": [64, 64, 64], "out_dim": 16,
               "train": {"lr": 3e-3, "max_epochs": 15, "batch_size": 128}},
    "ace": {"score": "ace", "dims": [0, 1]},
}


def make_decisions(rng, n_episodes, shift=0.0, lengths=(12, 30)):
    """Synthetic rollouts: embeddings drift with `shift`, sample batches widen with it."""
    lens = rng.integers(*lengths, size=n_episodes)
    n = int(lens.sum())
    emb = rng.normal(size=(n, D)).astype(np.float32) + shift
    centres = rng.choice([-1.0, 1.0], size=(n, 1, 1, A))
    samples = centres + (0.05 + shift) * rng.normal(size=(n, B, H, A))
    samples = np.where(rng.random((n, B, 1, 1)) < 0.5, samples, -samples).astype(np.float32)
    return emb, samples, np.cumsum(lens)


@pytest.fixture(scope="module")
def monitor():
    rng = np.random.default_rng(0)
    emb, smp, ends = make_decisions(rng, 40)
    mon = fit_monitor(ScoreFitData(emb, smp, ends, seed=0), IDENTITY, scores=SCORES, windows={"rnd_oe": 3, "ace": 5})
    emb_c, smp_c, ends_c = make_decisions(rng, 40)
    mon.calibrate(mon.score_offline(emb_c, smp_c, ends_c), ends_c, delta=0.1, threshold_type="constant")
    return mon


def run_online(mon, emb, smp, ends):
    reports, start = [], 0
    for end in ends:
        mon.reset()
        reports.append([mon.step(torch.from_numpy(emb[i]), torch.from_numpy(smp[i])) for i in range(start, end)])
        start = end
    return reports


def test_online_equals_offline(monitor):
    """Every score (STAC keeps history), window, ratio and alarm agree; OR rule over three scores."""
    rng = np.random.default_rng(1)
    stac = fit_monitor(ScoreFitData(*make_decisions(rng, 3)), IDENTITY, scores={"stac": {"score": "stac", "n_action_steps": 4}}).scores
    monitor = FailureMonitor({**monitor.scores, **stac}, IDENTITY, windows={"rnd_oe": 3, "ace": 5, "stac": 4}, rule="or")
    emb_c, smp_c, ends_c = make_decisions(rng, 30)
    monitor.calibrate(monitor.score_offline(emb_c, smp_c, ends_c), ends_c, delta=0.1, threshold_type="band")
    parts = [make_decisions(rng, 4, shift=s) for s in (0.0, 1.5)]
    emb = np.concatenate([p[0] for p in parts])
    smp = np.concatenate([p[1] for p in parts])
    ends = np.concatenate([parts[0][2], parts[0][2][-1] + parts[1][2]])
    raw = monitor.score_offline(emb, smp, ends)
    trace = monitor.alarms_offline(raw, ends)
    online = run_online(monitor, emb, smp, ends)
    for e, reports in enumerate(online):
        for t, rep in enumerate(reports):
            for k, name in enumerate(monitor.names):
                n = sum(len(r) for r in online[:e]) + t
                assert rep.scores[name] == pytest.approx(raw[name][n], abs=1e-5)
                assert rep.windowed[name] == pytest.approx(trace.eta[k, e, t], abs=1e-5)
                assert rep.ratios[name] == pytest.approx(trace.ratios[k, e, t], abs=1e-5)
            assert rep.alarm == trace.alarm[e, t]
    first_online = [next((r.decision for r in reps if r.alarm), -1) for reps in online]
    np.testing.assert_array_equal(first_online, trace.first_alarm)
    assert trace.flagged[4:].mean() > trace.flagged[:4].mean()  # the shifted episodes alarm more
    assert trace.flagged[4:].all()


def test_alarm_reason_names_the_indicators(monitor):
    rng = np.random.default_rng(2)
    emb, smp, ends = make_decisions(rng, 1, shift=1.5, lengths=(30, 31))
    monitor.reset()
    reports = [monitor.step(emb[i], smp[i]) for i in range(ends[0])]
    alarms = [r for r in reports if r.alarm]
    assert alarms, "a strongly shifted episode must raise the alarm"
    assert set(alarms[0].crossed) == set(monitor.names) and "above threshold" in alarms[0].reason
    assert alarms[0].combined_ratio == pytest.approx(min(alarms[0].ratios.values()))


def test_save_load_gives_identical_reports(monitor, tmp_path):
    save_monitor(monitor, tmp_path / "mon")
    loaded = load_monitor(tmp_path / "mon")
    assert loaded.windows == monitor.windows and loaded.rule == "and"
    rng = np.random.default_rng(3)
    emb, smp, ends = make_decisions(rng, 2, shift=0.3)
    a, b = run_online(monitor, emb, smp, ends), run_online(loaded, emb, smp, ends)
    for ra, rb in zip(sum(a, []), sum(b, [])):
        assert ra == rb
    config = json.loads((tmp_path / "mon" / "monitor.json").read_text())
    assert config["identity"]["embedding_dim"] == D and config["thresholds"]["ace"]["kind"] == "constant"


class _Policy:
    def __init__(self, d, h, a):
        self.embedding_dim, self.horizon, self.action_dim, self.n_action_steps = d, h, a, 4
        self.device = torch.device("cpu")


def test_load_against_other_policy_names_both_shapes(monitor, tmp_path):
    save_monitor(monitor, tmp_path / "mon")
    with pytest.warns(UserWarning, match="records no policy fingerprint.*only its shapes"):  # _Policy has no weights to fingerprint
        load_monitor(tmp_path / "mon", policy=_Policy(D, H, A))
    with pytest.raises(ValueError, match=r"fitted for a policy with embedding \(D=12\).*policy has embedding \(D=64\)"):
        load_monitor(tmp_path / "mon", policy=_Policy(64, H, A))
    with pytest.raises(ValueError, match=r"\(16, 8, 2\).*\(16, 16, 7\)"):
        load_monitor(tmp_path / "mon", policy=_Policy(D, 16, 7))
    with pytest.raises(FileNotFoundError, match="launch.fit"):
        load_monitor(tmp_path / "missing")


class _Exploding:
    name, needs, embedding_dim, sample_shape, fitted = "boom", frozenset({"embedding"}), D, None, True

    def reset(self):
        pass

    def step(self, embedding, samples):
        raise RuntimeError("CUDA out of memory")

    step_checked = step


def test_failsafe_alarms_never_raise(monitor):
    rng = np.random.default_rng(4)
    emb, smp, _ = make_decisions(rng, 1)
    monitor.reset()
    bad = emb[0].copy()
    bad[3] = np.nan
    rep = monitor.step(bad, smp[0])
    assert rep.alarm and rep.failsafe and "non-finite values in embedding" in rep.reason
    rep = monitor.step(emb[0][:5], smp[0])
    assert rep.alarm and "embedding has shape (5,), the monitor expects (12,)" in rep.reason
    rep = monitor.step(emb[0], smp[0][:, :4])
    assert rep.alarm and "(16, 4, 2)" in rep.reason
    assert monitor.step(emb[0], smp[0]).failsafe is False
    exploding = FailureMonitor({"boom": _Exploding()}, IDENTITY, windows={"boom": 1}, rule="single", thresholds={"boom": monitor.thresholds["ace"]})
    rep = exploding.step(emb[0], smp[0])
    assert rep.alarm and rep.failsafe and "RuntimeError: CUDA out of memory" in rep.reason


def test_skip_and_uncalibrated(monitor):
    rng = np.random.default_rng(5)
    emb, smp, _ = make_decisions(rng, 1)
    monitor.reset()
    rep = monitor.step(emb[0], smp[0], skip=["ace"])
    assert "ace" not in rep.scores and rep.skipped == ("ace",) and rep.windowed["ace"] == 0.0
    assert monitor.step(emb[0], smp[0], skip=monitor.names).failsafe
    fresh = FailureMonitor(monitor.scores, IDENTITY, windows=monitor.windows)
    with pytest.raises(MonitorNotCalibratedError, match="launch.calibrate"):
        fresh.step(emb[0], smp[0])
    with pytest.raises(ValueError, match="fitted on embeddings of D=12 but the policy has D=7"):
        FailureMonitor(monitor.scores, PolicyIdentity(7, B, H, A), windows=monitor.windows)


def test_numpy_torch_and_batched_inputs_give_the_same_report(monitor):
    """Inputs are checked once by the monitor; every accepted layout scores identically."""
    emb, smp, _ = make_decisions(np.random.default_rng(6), 1)
    reports = []
    for z, s in ((emb[0], smp[0]), (torch.from_numpy(emb[0]), torch.from_numpy(smp[0])), (emb[:1], smp[:1])):
        monitor.reset()
        reports.append(monitor.step(z, s))
    assert reports[0] == reports[1] == reports[2] and not reports[0].failsafe
    rep = monitor.step("not an array", smp[0])
    assert rep.failsafe and "must be numeric" in rep.reason


def test_bfloat16_inputs_score_like_their_float32_values(monitor):
    """A bf16 policy's embedding and samples are widened exactly, not turned into fail-safe alarms."""
    emb, smp, _ = make_decisions(np.random.default_rng(7), 1)
    z16, s16 = torch.from_numpy(emb[0]).bfloat16(), torch.from_numpy(smp[0]).bfloat16()
    monitor.reset()
    got = monitor.step(z16, s16)
    monitor.reset()
    want = monitor.step(z16.float(), s16.float())
    assert not got.failsafe, got.reason
    assert got == want


def test_verdict_times_each_score_so_a_slow_one_is_found(monitor, monkeypatch):
    import time

    rng = np.random.default_rng(3)
    emb, smp, _ = make_decisions(rng, 1)
    ace = monitor.scores["ace"]
    slow = ace.step_checked
    monkeypatch.setattr(ace, "step_checked", lambda *a, **k: (time.sleep(0.03), slow(*a, **k))[1])
    monitor.reset()
    verdict = monitor.step(emb[0], smp[0])
    assert set(verdict.score_ms) == {"rnd_oe", "ace"} and verdict.score_ms["ace"] >= 30.0 > verdict.score_ms["rnd_oe"]
