"""A pipeline fit stage resumed after an interruption refits into its own output, which holds the monitor it had made."""

from __future__ import annotations

import shutil
from pathlib import Path

from hydra import compose, initialize_config_dir

from benchmarks.synthetic_stores import SyntheticTask, write_synthetic_store
from fiper.monitor import load_monitor
from launch import pipeline
from launch.stages import Stages

ROOT = Path(__file__).resolve().parents[1]
CONF, CHECKPOINT = ROOT / "launch" / "conf", ROOT / "launch" / "checkpoints" / "pick_place_diffusion_mlp"
TASK = SyntheticTask(embedding_dim=64, num_samples=8, horizon=16, action_dim=4, n_action_steps=4)  # the shipped policy's shapes


def test_a_resumed_fit_stage_refits_into_its_own_calibrated_output(tmp_path, capsys):
    run_dir = tmp_path / "run"
    shutil.copytree(CHECKPOINT, run_dir / "policy")
    for name, n, seed in (("id_fit.zarr", 10, 0), ("id_calibration.zarr", 20, 1)):
        write_synthetic_store(run_dir / name, TASK, n_success_id=n, n_success_ood=0, n_fail_id=0, n_fail_ood=0, seed=seed)
    with initialize_config_dir(config_dir=str(CONF), version_base=None):
        cfg = compose(config_name="pipeline", overrides=[f"run_dir={run_dir}", "device=cpu", "rollouts.num_samples=8",
                                                          "monitor.scores.rnd_oe.train={max_epochs: 2}"])
        steps = pipeline._steps(cfg, run_dir, None)["fit + calibrate monitor"]
        stages, out = Stages(run_dir), run_dir / "monitor"
        fingerprint = stages.fingerprint(steps, {})

        def work():
            return [step.module.run(step.compose()) for step in steps]

        stages.run("fit + calibrate monitor", out, fingerprint, work)
        Stages.marker(out).rename(Stages.marker(out, "pending"))  # killed after calibrating, before the stage's record
        stages.run("fit + calibrate monitor", out, fingerprint, work)
    assert "resuming an interrupted run" in capsys.readouterr().out
    assert load_monitor(out).delta == cfg.monitor.delta and Stages.marker(out).exists()
