"""What the labels of failed episodes say about an env's labelling (``fiper.collection.episode_labels``'s defaults).

Two things an env written without fiper in mind often gets wrong, and which the labels show once a few episodes ran:

- it never says what success is (no ``success`` / ``is_success`` in ``info``): every episode is a failure, and
  collection with ``only_success`` stops after its attempts with nothing to store;
- it says why an episode ended in words of its own (``info['why'] = 'box fell off the table'``) rather than in
  ``failure_reason``: every such failure is labelled ``terminated``, its cause lost to the evaluation's failure types;
- it reports its time limit as termination (robosuite's ``horizon`` ends an episode with ``done=True``, which its
  ``GymWrapper`` returns as ``terminated``): every run-out episode is labelled a failure ``terminated`` at the same
  last step, a physical failure to the evaluation and damage to the outcome sweep, where ``truncated`` would make it a
  ``timeout``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from typing import Any

SUCCESS_KEYS = ("success", "is_success")  # where episode_labels reads success from, in this order
DEFAULT_TERMINATED = "terminated"  # episode_labels' failure reason of an episode that ended without success or a reason
MIN_EPISODES = 3  # fewer failed episodes say nothing of a pattern
READ_KEYS = (*SUCCESS_KEYS, "failure_step", "failure_reason", "shift", "severity", "step", "seed")  # what fiper reads of info


def reports_success(info_keys: Collection[str]) -> bool:
    """Whether an env's ``info`` (its keys) says whether the episode succeeded (either key, whatever its value)."""
    return any(key in info_keys for key in SUCCESS_KEYS)


def no_success_reported(attempts: int, info_keys: Iterable[str], terminated: int = 0, what: str = "attempts",
                        timeouts: int = 0) -> str:
    """The sentence for ``attempts`` episodes whose final ``info`` never held a success key; ``terminated`` of them ended
    ``terminated`` (not by a time limit), which for an env that terminates on reaching its goal are its successes, and
    ``timeouts`` ran to the time limit, which for a task of lasting (balancing, walking) are its successes."""
    keys = sorted(map(str, info_keys))
    ended = (f"; {terminated} of them ended terminated, not by the time limit, each labelled a failure 'terminated': if the "
             "env terminates on reaching its goal (gymnasium's MountainCarContinuous-v0), those are its successes, which "
             "the env config says with '+env.wrappers=[\"fiper.wrappers:TerminationIsSuccess\"]' (or the env factory by "
             "returning fiper.wrappers.TerminationIsSuccess(env))") if terminated else ""
    ended += (f"; {timeouts} of them ran to the time limit, each labelled a failure 'timeout': if lasting until then is the "
              "task (a pole kept up, a walker still walking: gymnasium's InvertedPendulum-v5, Hopper-v5), those are its "
              "successes, which the env config says with '+env.wrappers=[\"fiper.wrappers:TimeLimitIsSuccess\"]'") \
        if timeouts else ""
    alike = [key for key in keys if "succe" in key.lower()]  # gym-hil's 'succeed': a success under a name of its own
    named = (f"; {', '.join(map(repr, alike))} may be the env's success under a name of its own: copy it to info['success'] "
             "in a wrapper") if alike else ""
    return (f"the env's info said in none of the {attempts} {what} whether the episode succeeded (no 'success' or "
            f"'is_success'; its last info had {keys if keys else 'no keys'}{named}), and an episode is a success only when the env "
            f"says so{ended}; otherwise wrap the env to set info['success'] at every step (robosuite: env._check_success(); "
            "dm_control: from the physics, as examples/dmc_reacher/envs.py does; docs/envs.md, 'Your own env, end to end')")


def never_said_success(attempts: int, info_keys: Collection[str]) -> str:
    """The sentence for ``attempts`` episodes whose info held a success key that was false at every step of every one:
    an expert that never reached the goal, or an env whose own success test cannot be met."""
    key = next(key for key in SUCCESS_KEYS if key in info_keys)
    return (f"the env's info[{key!r}] was false at every step of all {attempts} attempts: if the expert reached the goal "
            "(watch an attempt, or read its observations), the env's own success test may be one that cannot be met "
            "(gym-xarm 0.1.1's XarmLift-v0 compares the cube's height with a target in other coordinates): set "
            "info['success'] from the task's state in the env factory (examples/gym_xarm/envs.py)")


def timeout_as_termination(failures: Iterable[tuple[str, int]], step_limit: int | None = None) -> str | None:
    """A note when every failed episode (``(failure_reason, failure_step)``, at least ``MIN_EPISODES``) ended with the
    default ``terminated`` at one and the same step, the last one of the env's declared ``step_limit`` when it declares
    one: an env that reports its time limit as termination; else None (episodes that all end alike before the limit, as
    a deterministic env's whose success is under a key fiper does not read, are no time limit)."""
    tally = Counter((str(reason), int(step)) for reason, step in failures)
    if sum(tally.values()) < MIN_EPISODES or len(tally) != 1:
        return None
    (reason, step), count = next(iter(tally.items()))
    if reason != DEFAULT_TERMINATED or (step_limit is not None and step != int(step_limit) - 1):
        return None
    return (f"all {count} failed episodes ended 'terminated' at step {step} without the env saying why: an env that reports "
            "its time limit as termination (robosuite's horizon, returned by its GymWrapper as terminated) has every episode "
            "that ran out of time labelled a physical failure at its last step, where a truncated one is a 'timeout'; end "
            "it with truncated instead (robosuite: ignore_done=True inside gymnasium.wrappers.TimeLimit(env, "
            "max_episode_steps=horizon)), or set info['failure_reason'] for real failures")


def unread_words(info: Mapping[str, Any]) -> dict[str, str]:
    """The final ``info``'s text entries that fiper does not read (``READ_KEYS``): where an env that ended an episode
    without ``failure_reason`` may have said why in words of its own (``{'why': 'box fell off the table'}``)."""
    return {str(k): v for k, v in info.items() if isinstance(v, str) and v and k not in READ_KEYS}


def unnamed_terminations(count: int, words: Mapping[str, str]) -> str:
    """The sentence for ``count`` failed episodes labelled the default ``terminated`` whose final info said why in
    ``words`` (``unread_words``, from one of them): a note only then, since an env saying nothing means the default."""
    said = ", ".join(f"{k}={v!r}" for k, v in sorted(words.items()))
    return (f"{count} failed episode{'s' * (count != 1)} ended terminated without info['failure_reason'] (one's final info "
            f"said {said}, which fiper does not read): they are "
            f"labelled {DEFAULT_TERMINATED!r} at their last step, and the evaluation's failure types cannot tell them "
            "apart; set info['failure_reason'] on the step that ends them (docs/envs.md, 'Labels in info')")
