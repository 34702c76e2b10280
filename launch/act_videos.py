"""Videos of an outcome sweep: per response, the first episode in which the monitor alarmed, re-run rendered.

The response's store says which (cell, seed) alarmed first, in sweep order; that episode is run again with the
same agent and seed in an env made with ``render_mode='rgb_array'`` (``fiper.control.video.record_episode``) and
written beside its score traces (``write_video``). Sampling is seeded per episode, so the re-run executes the
recorded actions; its actions are compared with the stored ones and the title says where they diverged, if they did.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fiper.control import MonitoredPolicy
from fiper.control.video import VideoNotWritten, check_video_writer, record_episode, rendered_frame, write_video
from fiper.storage import EpisodeStore
from launch.stress import env_builder


def first_alarmed(store_path: str | Path, cells: Sequence[tuple[str, float]], seeds: Sequence[int]) -> tuple[str, float, int, int] | None:
    """(shift, severity, seed, episode index) of the first episode, cells then seeds in sweep order, whose monitor
    alarmed; None when none did."""
    store = EpisodeStore.open(store_path)
    index = {(str(a), round(float(b), 6), int(c)): i
             for i, (a, b, c) in enumerate(zip(store.meta("shift"), store.meta("severity"), store.meta("seed")))}
    for shift, severity in cells:
        for seed in seeds:
            i = index.get((shift, round(severity, 6), seed))
            if i is not None and np.any(store.episode_decisions(i, ["alarm"])["alarm"]):
                return shift, severity, seed, i
    return None


def divergence(recorded: np.ndarray, rerun: np.ndarray) -> int | None:
    """The first env step at which the re-run's action differs from the recorded one (None: equal throughout)."""
    n = min(len(recorded), len(rerun))
    differ = ~np.isclose(np.asarray(recorded[:n], float), np.asarray(rerun[:n], float), rtol=1e-5, atol=1e-6).all(axis=1)
    if differ.any():
        return int(np.argmax(differ))
    return None if len(recorded) == len(rerun) else n


def video_title(task: str, shift: str, severity: float, seed: int, response: str, diverged_at: int | None,
                first_decision_steps: int) -> str:
    cell = "in distribution" if shift == "none" else f"{shift} {severity:g}"
    title = f"{task} · {cell} · seed {seed} · {response}"
    if diverged_at is None:
        return title
    if diverged_at < first_decision_steps:
        return f"{title} · re-run differs from the recorded episode at its first decision"
    return f"{title} · re-run diverged from the recorded episode at step {diverged_at}"


# how an env is asked for frames of a size: fiper's tasks take render_size, gymnasium's MuJoCo envs width and height,
# panda-gym's render_width and render_height, lerobot's gym-pusht visualization_width and visualization_height (680 px
# by default), shimmy's dm_control envs a dict render_kwargs of width and height, other envs the render mode alone
# (their own size)
RENDER_SIZE_KWARGS = (("render_size",), ("width", "height"), ("render_width", "render_height"),
                      ("visualization_width", "visualization_height"), ("render_kwargs",), ())


def size_kwargs(names: tuple[str, ...], size: int) -> dict[str, Any]:
    """The keywords ``names`` asking for frames of ``size`` px (shimmy's render_kwargs holds width and height)."""
    if names == ("render_kwargs",):
        return {"render_kwargs": {"width": int(size), "height": int(size)}}
    return {n: int(size) for n in names}


AFTER_SWEEP = " (the sweep's stores and outcome files are already written)"


def rendering_env(env_cfg: Mapping[str, Any], factories: Mapping[str, str], shift: str, severity: float, size: int,
                  when: str = AFTER_SWEEP) -> Any:
    """The env of cell (shift, severity) made with render_mode='rgb_array' at ``size`` px where it takes a size; an env
    that refuses the mode, or takes it and renders nothing, is an error naming both fixes (``when`` ends it)."""
    refused = []
    for names in RENDER_SIZE_KWARGS:
        kwargs = {**dict(env_cfg.get("kwargs") or {}), "render_mode": "rgb_array", **size_kwargs(names, size)}
        try:
            env = env_builder({**env_cfg, "kwargs": kwargs}, dict(factories))(shift, severity)
        except TypeError as err:
            refused.append(f"{', '.join(('render_mode', *names))}: {err}")
            continue
        mode = getattr(env, "render_mode", None)
        if mode == "rgb_array":
            return env
        env.close()
        raise ValueError(f"videos=true makes the env of cell ({shift}, {severity:g}) with render_mode='rgb_array', and the "
                         f"factory built one whose render_mode is {mode!r}: pass render_mode on to the env in the factory "
                         f"(e.g. gymnasium.make(..., render_mode=render_mode)) or set videos=false{when}")
    raise ValueError(f"videos=true makes the env of cell ({shift}, {severity:g}) with render_mode='rgb_array' (and render_size, "
                     f"width and height, render_width and render_height, visualization_width and visualization_height, or render_kwargs, of {size} px), and it refused each ({'; '.join(refused)}); let the env factory take "
                     f"render_mode or set videos=false{when}")


def check_rendering(env_cfg: Mapping[str, Any], factories: Mapping[str, str], size: int, when: str) -> None:
    """Build the in-distribution env as the videos will, reset it and render one frame: an env that cannot render is
    refused up front, with its own error when its render() raises; so is an imageio that cannot write the mp4s."""
    try:
        check_video_writer()
    except ValueError as err:
        raise ValueError(f"videos=true: {err}, or set videos=false{when}") from None
    env = rendering_env(env_cfg, factories, "none", 0.0, size, when)
    try:
        env.reset(seed=0)
        rendered_frame(env)
    except ValueError as err:
        raise ValueError(f"{err}{when}") from None
    except Exception as err:  # the user's render(): any error, named with the way out
        raise ValueError(f"videos=true renders the env, and {type(env.unwrapped).__name__}.render() after a reset raised "
                         f"{type(err).__name__}: {err}; fix render() or set videos=false{when}") from err
    finally:
        env.close()


def write_videos(env_cfg: Mapping[str, Any], factories: Mapping[str, str], agents: Mapping[str, MonitoredPolicy],
                 stores: Mapping[str, str | Path], cells: Sequence[tuple[str, float]], seeds: Sequence[int], out_dir: str | Path, *,
                 task: str, size: int, period: float | None, record_keys: Sequence[str] | None = None) -> dict[str, str]:
    """One mp4 per response in ``out_dir`` (``<response>.mp4``); returns, per response, the file written and whether
    the re-run reproduced the recorded episode, or why there is no video (a video the encoder did not write among them)."""
    written: dict[str, str] = {}
    for name, agent in agents.items():
        found = first_alarmed(stores[name], cells, seeds)
        if found is None:
            written[name] = "no episode alarmed, no video"
            continue
        shift, severity, seed, i = found
        recorded = EpisodeStore.open(stores[name]).episode(i, ["action"])["action"]
        env = rendering_env(env_cfg, factories, shift, severity, size)
        try:
            result, frames = record_episode(env, agent, seed=seed, record_keys=record_keys)
        finally:
            env.close()
        at = divergence(recorded, result.steps["action"])
        title = video_title(task, shift, severity, seed, name, at, agent.policy.n_action_steps)
        path = Path(out_dir) / f"{name}.mp4"
        try:
            write_video(path, frames, result.decisions, title=title, control_period_s=period)
        except VideoNotWritten as err:  # a by-product: the sweep's stores and outcome files stand, the other videos follow
            earlier = path.exists()
            path.unlink(missing_ok=True)
            written[name] = (f"no video: {err}, or set videos=false"
                             f"{f' (removed the earlier {path.name}, of another sweep)' if earlier else ''}")
            continue
        same = "the recorded episode reproduced" if at is None else f"re-run diverged at step {at}"
        written[name] = f"{path} ({shift} {severity:g}, seed {seed}; {same})"
    return written
