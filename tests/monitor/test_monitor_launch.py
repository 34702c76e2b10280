"""launch.fit and launch.calibrate on recorded rollout stores (no policy needed when decisions are recorded)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from calibration import InsufficientCalibrationError
from fiper.monitor import load_monitor
from fiper.storage import EpisodeStore
from launch import calibrate, fit

CONF = Path(__file__).resolve().parents[2] / "launch" / "conf"
B, H, A, D = 8, 8, 2, 10


def write_rollouts(path, n_episodes, seed, shift=0.0, success=True):
    rng = np.random.default_rng(seed)
    store = EpisodeStore.open_or_create(path, attrs={"n_action_steps": 4, "task": "toy"})
    for e in range(n_episodes):
        n = int(rng.integers(6, 12))
        store.append_episode(
            {"agent_pos": rng.normal(size=(4 * n, 2)).astype(np.float32), "action": rng.normal(size=(4 * n, A)).astype(np.float32)},
            decisions={"embedding": (rng.normal(size=(n, D)) + shift).astype(np.float32),
                       "samples": (rng.choice([-1, 1], size=(n, B, 1, 1)) + (0.05 + shift) * rng.normal(size=(n, B, H, A))).astype(np.float16),
                       "env_step": np.arange(n, dtype=np.int64) * 4},
            meta={"success": success, "failure_step": -1, "shift": "none" if shift == 0 else "obstacle", "severity": float(shift), "seed": 1000 * seed + e},
        )
    return path


def run(module, name, overrides):
    with initialize_config_dir(config_dir=str(CONF), version_base=None):
        return module.run(compose(config_name=name, overrides=overrides))


SMALL = ["monitor.scores.rnd_oe.target_widths=[16]", "monitor.scores.rnd_oe.predictor_widths=[32,32]",
         "monitor.scores.rnd_oe.out_dim=8", "monitor.scores.rnd_oe.train={max_epochs: 3, lr: 0.003}",
         "monitor.scores.ace.dims=[0,1]", "monitor.windows={rnd_oe: 2, ace: 3}"]


def test_fit_then_calibrate_from_recorded_rollouts(tmp_path):
    fit_store = write_rollouts(tmp_path / "fit.zarr", 12, seed=0)
    write_rollouts(fit_store, 3, seed=9, shift=1.0, success=False)  # failures and shifted episodes are left out
    cal_store = write_rollouts(tmp_path / "cal.zarr", 25, seed=1)
    out = tmp_path / "monitor"
    monitor = run(fit, "fit", [f"data={fit_store}", f"out={out}", *SMALL])
    assert monitor.identity.sample_shape == (B, H, A) and monitor.identity.n_action_steps == 4
    assert not load_monitor(out).calibrated and (out / "fit_config.yaml").exists()
    run(calibrate, "calibrate", [f"data={cal_store}", f"monitor_dir={out}", "delta=0.1", "threshold_type=band"])
    loaded = load_monitor(out)
    assert loaded.calibrated and loaded.thresholds["ace"].kind == "band" and loaded.thresholds["rnd_oe"].num_calibration > 0
    # the calibrated monitor stays quiet on new in-distribution rollouts and alarms on shifted ones
    test = EpisodeStore.open(write_rollouts(tmp_path / "test.zarr", 10, seed=2))
    bad = EpisodeStore.open(write_rollouts(tmp_path / "bad.zarr", 10, seed=3, shift=1.0, success=False))
    flagged = []
    for store in (test, bad):
        emb, smp = store.read_decisions("embedding"), store.read_decisions("samples").astype(np.float32)
        trace = loaded.alarms_offline(loaded.score_offline(emb, smp, store.decision_ends), store.decision_ends)
        flagged.append(trace.flagged.mean())
    assert flagged[0] <= 0.3 and flagged[1] >= flagged[0] + 0.4
    # joint calibration: one shared height for the AND alarm, saved with the monitor
    run(calibrate, "calibrate", [f"data={cal_store}", f"monitor_dir={out}", "delta=0.1", "threshold_type=constant", "joint=true"])
    joint = load_monitor(out).thresholds
    heights = {n: th.params["height"] for n, th in joint.items()}
    assert all(th.params["joint"] and th.guaranteed and th.kind == "constant" for th in joint.values())
    assert len(set(heights.values())) == 1 and joint["ace"].params["num_d2"] + joint["ace"].params["num_d1"] == 25
    for name, th in joint.items():
        assert th(0) == pytest.approx(th.params["height"] * th.params["scale"])


def test_calibrate_names_the_minimum_number_of_rollouts(tmp_path):
    out = tmp_path / "monitor"
    run(fit, "fit", [f"data={write_rollouts(tmp_path / 'fit.zarr', 8, seed=0)}", f"out={out}", *SMALL])
    few = write_rollouts(tmp_path / "few.zarr", 5, seed=1)
    with pytest.raises(InsufficientCalibrationError, match=r"19"):
        run(calibrate, "calibrate", [f"data={few}", f"monitor_dir={out}", "delta=0.05", "threshold_type=constant"])


def test_fit_needs_a_policy_for_demonstrations(tmp_path):
    store = EpisodeStore.create(tmp_path / "demos.zarr")
    store.append_episode({"agent_pos": np.zeros((5, 2), np.float32), "action": np.zeros((5, 2), np.float32)})
    with pytest.raises(ValueError, match="records no decisions.*policy_dir="):
        run(fit, "fit", [f"data={tmp_path / 'demos.zarr'}", f"out={tmp_path / 'm'}", *SMALL])
    emb = EpisodeStore.create(tmp_path / "embedding.zarr")  # another recorder's rollouts, embedding alone
    emb.append_episode({"action": np.zeros((4, 2), np.float32)}, decisions={"embedding": np.zeros((2, 3), np.float32),
                                                                           "env_step": np.array([0, 2])})
    with pytest.raises(ValueError, match="records decisions/embedding alone.*sample shapes.*policy_factory="):
        run(fit, "fit", [f"data={tmp_path / 'embedding.zarr'}", f"out={tmp_path / 'm2'}", *SMALL])


def test_fit_on_rollouts_without_a_success_counts_them_and_names_the_fixes(tmp_path):
    """A policy that never succeeded in distribution: the fit stops saying what the store holds, before any model is built."""
    store = write_rollouts(tmp_path / "fit.zarr", 4, seed=0, success=False)
    write_rollouts(store, 2, seed=1, shift=1.0, success=True)
    with pytest.raises(ValueError, match=r"of its 6 episodes 2 succeeded and 4 ran in distribution \(shift 'none'\), none both.*"
                                         r"train it longer or on more demonstrations.*info\['is_success'\]"):
        run(fit, "fit", [f"data={store}", f"out={tmp_path / 'monitor'}", *SMALL])
    assert not (tmp_path / "monitor").exists()


def test_fit_refuses_to_replace_a_monitor_unless_overwrite(tmp_path):
    """launch.fit into a folder holding a monitor is refused before fitting, naming the folder and overwrite=true;
    launch.calibrate still writes the thresholds into the folder launch.fit wrote, and recalibrates it."""
    fit_store, cal_store = write_rollouts(tmp_path / "fit.zarr", 8, seed=0), write_rollouts(tmp_path / "cal.zarr", 25, seed=1)
    out = tmp_path / "monitor"
    run(fit, "fit", [f"data={fit_store}", f"out={out}", *SMALL])
    for delta in ("0.1", "0.2"):
        run(calibrate, "calibrate", [f"data={cal_store}", f"monitor_dir={out}", f"delta={delta}", "threshold_type=constant"])
    saved = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(FileExistsError, match=rf"{out} already holds a monitor \(calibrated\).*overwrite=true"):
        run(fit, "fit", [f"data={fit_store}", f"out={out}", *SMALL, "monitor.windows={rnd_oe: 1, ace: 1}"])
    assert {p.name: p.read_bytes() for p in out.iterdir()} == saved and load_monitor(out).delta == 0.2
    run(fit, "fit", [f"data={fit_store}", f"out={out}", *SMALL, "monitor.windows={rnd_oe: 1, ace: 1}", "overwrite=true"])
    replaced = load_monitor(out)
    assert not replaced.calibrated and replaced.windows == {"rnd_oe": 1, "ace": 1} and not (out / "calibrate_config.yaml").exists()


def test_save_monitor_replaces_only_the_monitor_loaded_from_the_folder(tmp_path):
    """save_monitor writes a loaded monitor back (recalibrated) but refuses another one, or the folder's monitor
    replaced since it was loaded, unless overwrite=True."""
    from fiper.monitor import save_monitor

    out = tmp_path / "monitor"
    first = run(fit, "fit", [f"data={write_rollouts(tmp_path / 'a.zarr', 8, seed=0)}", f"out={out}", *SMALL])
    other = run(fit, "fit", [f"data={write_rollouts(tmp_path / 'b.zarr', 8, seed=2)}", f"out={tmp_path / 'other'}", *SMALL])
    loaded = load_monitor(out)
    save_monitor(loaded, out, extra={"note": "saved back"})
    save_monitor(first, out)  # the monitor written there, saved again
    with pytest.raises(FileExistsError, match=rf"{out} already holds a monitor \(fitted, not calibrated\).*overwrite=True"):
        save_monitor(other, out)
    save_monitor(other, out, overwrite=True)
    with pytest.raises(FileExistsError, match=r"changed since this monitor was loaded from it or saved there"):
        save_monitor(loaded, out)
    assert (out / "scores.safetensors").read_bytes() == (tmp_path / "other" / "scores.safetensors").read_bytes()
