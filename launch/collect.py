"""Collect expert demonstrations into an EpisodeStore.

    python -m launch.collect env=push_t n_episodes=100 out=data/push_t.zarr
    python -m launch.collect env=sort env.obs_mode=image env.shifts=[[obstacle,0.5]] out=...
    python -m launch.collect env.factory=my_pkg.envs:make env.name=null expert=my_pkg.experts:make out=...
    python -m launch.collect --config-dir examples/gym_reacher/conf env=reacher expert=examples.gym_reacher.expert:ReachExpert out=...
"""

from __future__ import annotations

import shutil
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from fiper.collection import collect
from fiper.env_factory import checked_expert, describe_env, env_task_name, make_env_from_config, resolve
from fiper.fingerprint import software_versions
from fiper.storage import EpisodeStore
from fiper.storage.building import build_store
from launch.validate import ENV_CHECKS, boolean, merged, optional, positive_int, reported, seed, target, text, validate

CHECKS = merged(ENV_CHECKS, {
    "out": text,
    "n_episodes": positive_int,
    "seed": seed,
    "only_success": boolean,
    "max_attempts": optional(positive_int),
    "expert": target,
    "overwrite": boolean,
    "progress": boolean,
})


def known_period(env, configured, task: str) -> float | None:
    """Seconds per env step when the env declares them (``dt``) or the config states them, else None with a note: demos
    record it beside the task; only the rollouts that warning times are measured on require it, so the note says now
    what launch.stress would stop on after training."""
    from fiper.control.period import control_period_s, declared_period

    if configured is None and declared_period(env) is None:
        try:
            control_period_s(env, None, env_name=task)
        except ValueError as err:
            print(f"note: the demos are saved without a control period; launch.stress and launch.act will stop until "
                  f"it is given: {err}")
        return None
    return control_period_s(env, configured, env_name=task)


def run(cfg: DictConfig):
    """Build env and expert from the config, create the store, collect; returns the summary.

    A run that fails before its first episode is saved removes the store it created. With ``overwrite`` an existing
    store is replaced only once the new one is complete: a run that fails leaves it as it was.
    """
    validate(cfg, CHECKS, "collect")
    config = OmegaConf.to_container(cfg, resolve=True)
    env = make_env_from_config(config["env"])
    try:
        expert = checked_expert(resolve(config["expert"])(env), f"expert={config['expert']}")
        task = env_task_name(env, config["env"].get("name"))  # a user's env: its gymnasium id unless env.name says otherwise
        attrs = {"task": task, "collect_config": config, "env": describe_env(env), "software": software_versions()}
        period = known_period(env, config["env"].get("control_period_s"), task)
        if period is not None:
            attrs["control_period_s"] = period
        summaries = []

        def fill(store: EpisodeStore) -> None:
            summary = collect(env, expert, store, cfg.n_episodes, seed=cfg.seed, only_success=cfg.only_success,
                              max_attempts=cfg.max_attempts, progress=cfg.progress)
            store.set_attrs(collection={"saved": summary.saved, "attempted": summary.attempted, "successes": summary.successes,
                                        "seeds": summary.seeds, "clipped_steps": summary.clipped_steps,
                                        "clip_excess": summary.clip_excess, "action_span_share": summary.span_share})
            summaries.append(summary)

        if cfg.overwrite and (Path(cfg.out).exists() or Path(cfg.out).is_symlink()):
            build_store(cfg.out, fill, attrs=attrs, overwrite=True)
        else:
            store = EpisodeStore.create(cfg.out, attrs=attrs)
            try:
                fill(store)
            except BaseException:
                if store.n_episodes == 0:
                    shutil.rmtree(cfg.out, ignore_errors=True)
                raise
    finally:
        env.close()
    print(f"{summaries[0]} -> {cfg.out}")
    return summaries[0]


@hydra.main(config_path="conf", config_name="collect", version_base=None)
def main(cfg: DictConfig) -> None:
    with reported():
        run(cfg)


if __name__ == "__main__":
    main()
