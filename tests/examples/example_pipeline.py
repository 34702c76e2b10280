"""An example's documented pipeline command, run at a tiny size: a small policy, few rollouts, one δ, few methods."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TINY_POLICY = ["policy.horizon=8", "policy.embed_dim=16", "policy.encoder_hidden=32", "policy.mlp_hidden=64", "policy.mlp_layers=2",
               "policy.num_inference_steps=4", "train.val_every=1000", "train.checkpoint_every=1000000", "train.progress=false"]


def run_example_pipeline(example: str, run_dir: Path, *, cells: str, demos: int, steps: int, seeds_per_cell: int,
                         env_overrides: str = "'++progress=false'", extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """``python -m launch.pipeline --config-dir examples/<example>/conf --config-name pipeline_<name>`` with tiny sizes."""
    name = example.removeprefix("gym_")
    command = [
        sys.executable, "-m", "launch.pipeline", "--config-dir", str(ROOT / "examples" / example / "conf"),
        "--config-name", f"pipeline_{name}", f"run_dir={run_dir}", "device=cpu", f"collect.n_episodes={demos}",
        f"train.steps={steps}", "train.batch_size=64", "train.overrides=[" + ",".join(f"'{o}'" for o in TINY_POLICY) + "]",
        f"env_overrides=[{env_overrides}]", "rollouts.fit_episodes=8", "rollouts.calibration_episodes=8", "rollouts.num_samples=8",
        f"rollouts.seeds_per_cell={seeds_per_cell}", f"rollouts.cells={cells}",
        "monitor.delta=0.5", "monitor.scores.rnd_oe.train.max_epochs=2", "deploy_delta=0.5",
        "evaluate.deltas=[0.5]", "evaluate.split.fit=0.5", "evaluate.split.calibration=0.5",
        "evaluate.overrides=['threshold_types=[constant]','windows=[1,episode]','progress=false','plots=false','~methods.knn',"
        "'~methods.rnd_a','~methods.logpzo','~methods.stac','~methods.fiper_joint','~methods.fiper_or_joint','~methods.fiper_select','deploy_method=fiper']",
        *extra,
    ]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def compose_example(example: str, config_name: str):
    """A config of ``examples/<example>/conf`` composed as launch.pipeline composes it (launch/conf's groups on the
    search path, fiper's score and monitor groups stored)."""
    from hydra import compose, initialize_config_dir

    import launch.components  # noqa: F401  (stores the score and monitor groups, as launch.pipeline does on import)

    with initialize_config_dir(config_dir=str(ROOT / "examples" / example / "conf"), version_base=None):
        return compose(config_name=config_name, overrides=[f"hydra.searchpath=[file://{ROOT / 'launch' / 'conf'}]"])


def shift_factories(cfg, envs) -> list[str]:
    """The shifts of a pipeline config's stress cells, each checked to name a callable factory of the module ``envs``."""
    shifts = [cell[0] for cell in cfg.rollouts.cells if cell[0] != "none"]
    for shift in shifts:
        module, name = cfg.rollouts.factories[shift].split(":")
        assert module == envs.__name__ and callable(getattr(envs, name)), (shift, cfg.rollouts.factories[shift])
    return shifts
