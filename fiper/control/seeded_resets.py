"""Whether a seed fixes an episode: the outcome sweep runs every (cell, seed) with and without fiper, one after the
other in one env, and compares the two, which means nothing if the runs started apart or drifted apart before a
response acted (an env that draws a new task per reset, a simulation that keeps contact state across reset)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from fiper.env_io import checked_action, clip_to_space, observation_dict
from fiper.env_factory import SetupError
from fiper.gym_api import reset_env, step_env
from fiper.scores.inputs import host_array


SEEDED_STEPS = 10  # steps of fixed actions after each reset of the seeded-reset check


def check_actions(space: Any, seed: int, n: int = SEEDED_STEPS) -> list[np.ndarray]:
    """``n`` actions drawn from a Box action space by a generator of ``seed`` (where a bound is infinite, from
    [-1, 1] on that side), the same at every call: what the seeded-reset check steps twice."""
    rng = np.random.default_rng([int(seed), 7])
    low = np.where(np.isfinite(space.low), space.low, -1.0)
    high = np.where(np.isfinite(space.high), space.high, 1.0)
    return [rng.uniform(low, high).astype(space.dtype) for _ in range(n)]


def seeded_run(env: Any, seed: int, actions: Sequence[np.ndarray]) -> list[dict[str, np.ndarray]]:
    """The observations of ``reset(seed)`` and of each of ``actions`` stepped after it, to the episode's end."""
    observations = [{k: np.array(host_array(v)) for k, v in observation_dict(reset_env(env, seed)[0]).items()}]
    for t, action in enumerate(actions):
        obs, terminated, truncated, _ = step_env(env, action, seed, t)
        observations.append({k: np.array(host_array(v)) for k, v in observation_dict(obs).items()})
        if terminated or truncated:
            break
    return observations


EXPERT_STEPS = 500  # at most this many steps of the expert's episode in the seeded-reset check


def expert_actions(env: Any, expert: Any, seed: int, n: int = EXPERT_STEPS) -> list[np.ndarray]:
    """The actions ``expert`` takes in the episode of ``seed`` (to its end, at most ``n``), clipped as collection clips them."""
    obs, info = reset_env(env, seed)
    expert.reset(seed)
    actions: list[np.ndarray] = []
    space = env.action_space
    for t in range(n):
        action = np.asarray(checked_action(expert.act(obs, info), env, seed, t), dtype=space.dtype)  # collection's check
        actions.append(clip_to_space(action, space)[0])  # as collection executes it
        obs, terminated, truncated, info = step_env(env, actions[-1], seed, t)
        if terminated or truncated:
            break
    return actions


def _differing(first: dict[str, np.ndarray], again: dict[str, np.ndarray], exact: bool) -> list[str]:
    same = (lambda a, b: np.array_equal(a, b, equal_nan=True)) if exact else \
        (lambda a, b: a.shape == b.shape and np.allclose(a, b, rtol=1e-5, atol=1e-6, equal_nan=True))
    return [k for k, v in first.items() if k not in again or not same(v, np.asarray(again[k]))]


def check_seeded_resets(make_env: Callable[[str, float], Any], cells: Iterable[tuple[str, float]], where: str, seed: int = 0,
                        expert: Callable[[Any], Any] | None = None) -> None:
    """Each cell's env must run the same episode from the same seed and actions: the outcome sweep runs every (cell, seed)
    with and without fiper in one env, one episode after another, and counts what the response changed, which means
    nothing if the two runs started apart or drifted apart before the response acted.

    Per cell: ``reset(seed)`` and :data:`SEEDED_STEPS` fixed actions, then another episode (seed + 1, other actions),
    then ``reset(seed)`` and the first actions again; the two runs' observations must agree (the starts exactly, the
    steps to 1e-5 relative, as the videos' re-runs are compared). Random actions seldom touch the task's objects, and
    state that a simulation keeps across reset may only show after contact (PhysX's and PyBullet's contact caches), so
    with ``expert`` (called as ``expert(env)``, as collection does) the check is repeated with the actions of the
    expert's episode of ``seed`` (after the expert's episode of seed + 1), which push the objects as the task does.
    Last, a second env of the cell, built the same way, must start the same episode from ``reset(seed)``: the videos
    re-run episodes in an env of their own, and an env that draws something when it is built (robosuite draws its
    cube's size then, from an unseeded generator; an unseeded ``metaworld.MT1`` its tasks) runs another episode there
    from the same seed."""
    for shift, severity in dict.fromkeys((str(s), float(v)) for s, v in cells):
        env = make_env(shift, severity)
        try:
            space = env.action_space
            fixed = hasattr(space, "low") and hasattr(space, "high")
            runs = [("", check_actions(space, seed) if fixed else [], check_actions(space, seed + 1) if fixed else [])]
            if expert is not None:
                agent = expert(env)
                try:
                    runs.append(("expert's ", expert_actions(env, agent, seed), expert_actions(env, agent, seed + 1)))
                except ValueError as err:  # an action of another shape, or not finite: collection would refuse it too
                    raise ValueError(f"{where}: the env of cell ({shift}, {severity:g}), run with the expert: {err}") from None
            for kind, actions, other in runs:
                try:
                    first = seeded_run(env, seed, actions)
                    seeded_run(env, seed + 1, other)
                    again = seeded_run(env, seed, actions)
                except (SetupError, ValueError, TypeError):  # the env's API, refused as it is
                    raise
                except Exception as err:
                    if kind:  # the expert's own actions: the env's error, as collection would meet it
                        raise
                    note = random_actions_failed(err, where, shift, severity, len(actions), expert is not None)
                    if expert is None:
                        raise SetupError(note) from err
                    print(f"note: {note}", flush=True)
                    continue
                _compare(first, again, kind, len(actions), where, shift, severity, seed)
            start = seeded_run(env, seed, [])[0]
        finally:
            env.close()
        twin = make_env(shift, severity)
        try:
            _compare_twin(start, seeded_run(twin, seed, [])[0], where, shift, severity, seed)
        finally:
            twin.close()


def random_actions_failed(err: Exception, where: str, shift: str, severity: float, n: int, with_expert: bool) -> str:
    """Why the check's random actions could not be stepped (a simulation they blow up), and what the check does then:
    with an expert, it checks with the expert's episode alone; without, it names the expert as the fix."""
    text = (f"{where}: the env of cell ({shift}, {severity:g}) raised {type(err).__name__}: {err} while the seeded-reset "
            f"check stepped {n} random actions drawn across its action space (a position-controlled arm sent to random "
            "targets over every joint's whole range can blow up its simulation, as gym-aloha's dm_control physics does)")
    if with_expert:
        return text + "; the check repeats the expert's episodes only"
    return (text + "; give the check the expert's actions instead, which move as the task does (launch.act "
            "expert=module:function; launch.pipeline passes collect.expert), or skip the outcome sweep (the pipeline's act=null)")


def _compare(first: list[dict[str, np.ndarray]], again: list[dict[str, np.ndarray]], kind: str, n: int, where: str, shift: str,
             severity: float, seed: int) -> None:
    differ = _differing(first[0], again[0], exact=True)
    if differ:
        raise SetupError(
            f"{where}: the env of cell ({shift}, {severity:g}) started a different episode from reset(seed={seed}) the second "
            f"time (after a reset with seed {seed + 1}; observation {', '.join(map(repr, differ))} differed). The outcome sweep "
            "runs every (cell, seed) with and without fiper and compares the two, so a seed must fix everything random in an "
            "episode: make reset(seed) reseed every random choice of the env and its wrappers (Meta-World's gym.make draws a "
            "new task at every reset: wrap it to call env.unwrapped.set_task(tasks[seed % len(tasks)]) with the tasks of "
            "metaworld.MT1(env_name, seed=0); robosuite's GymWrapper seeds numpy's global generator, which robosuite 1.5 "
            "does not draw from: reseed env.unwrapped.rng in reset, as examples/robosuite_lift/envs.py does) and put back "
            "every state the last episode left that the start depends on (gym-xarm's reset keeps the gripper's last "
            "command, MuJoCo's data.ctrl: call mujoco.mj_resetData(model, data) before it, as examples/gym_xarm/envs.py "
            "does), or skip the outcome sweep (the pipeline's act=null)")
    detail = next((f"{', '.join(map(repr, keys))} differed after step {step}"
                   for step, (a, b) in enumerate(zip(first[1:], again[1:]), start=1) if (keys := _differing(a, b, exact=False))), None)
    if detail is None and len(first) != len(again):
        detail = f"it ended after step {len(first) - 1} the first time and after step {len(again) - 1} the second"
    if detail:
        raise SetupError(
            f"{where}: the env of cell ({shift}, {severity:g}) started the same episode from reset(seed={seed}) the second time "
            f"(after an episode with seed {seed + 1}) but, given the same {n} {kind}actions, ran another: {detail}. The env "
            "keeps state across reset, so an episode depends on the episodes run before it in that env, and the outcome sweep's "
            "runs with and without fiper, one after another in one env, drift apart before any response acts: make reset(seed) "
            "put back every state the simulation steps from (PyBullet keeps its contact caches across a reset of the bodies: "
            "build the simulation anew in reset, as examples/gym_panda/envs.py does; ManiSkill's PhysX scene likewise: "
            "gym.make(..., reconfiguration_freq=1), as examples/maniskill_push/envs.py does), or skip the outcome sweep (the "
            "pipeline's act=null)")


def _compare_twin(start: dict[str, np.ndarray], twin: dict[str, np.ndarray], where: str, shift: str, severity: float,
                  seed: int) -> None:
    differ = _differing(start, twin, exact=True)
    if differ:
        raise SetupError(
            f"{where}: a second env of cell ({shift}, {severity:g}), built the same way, started a different episode from "
            f"reset(seed={seed}) than the first (observation {', '.join(map(repr, differ))} differed), though each env repeats "
            "its own: something random is drawn when the env is built, not at reset, from a generator no seed reaches "
            "(robosuite draws its cube's size when the env is built: robosuite.make(..., seed=0) fixes it; "
            "metaworld.MT1(env_name) draws its tasks' object and goal positions when it is built: metaworld.MT1(env_name, "
            "seed=0) fixes them). The videos re-run episodes in an env of their own, and stores recorded in other envs hold "
            "other episodes for the same seeds: seed what the env draws when it is built, or skip the outcome sweep (the "
            "pipeline's act=null)")
