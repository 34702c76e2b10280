"""What collection says about an env's labels: one that never reports success, and one that reports its time limit
as termination (robosuite's horizon through its GymWrapper), named with the fix; envs that label properly get no note."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from fiper.collection import collect
from fiper.label_notes import timeout_as_termination
from fiper.storage import EpisodeStore

HORIZON = 5


class Horizon(gym.Env):
    """Ends every episode at HORIZON steps with terminated=True and an empty info, as robosuite's GymWrapper does; with
    ``labelled`` it says success (never) and truncates, as a gymnasium env with a TimeLimit does."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)

    def __init__(self, labelled: bool = False):
        self.labelled, self.t = labelled, 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(2, np.float32), {}

    def step(self, action):
        self.t += 1
        done = self.t >= HORIZON
        info = {"success": False} if self.labelled else {}
        return np.zeros(2, np.float32), 0.0, done and not self.labelled, done and self.labelled, info


class Still:
    def reset(self, seed=None):
        pass

    def act(self, obs, info):
        return np.zeros(2, np.float32)


def test_an_env_that_never_says_success_stops_collection_naming_info_success_and_the_terminated_time_limit(tmp_path):
    store = EpisodeStore.create(tmp_path / "demos.zarr")
    with pytest.raises(RuntimeError) as err:
        collect(Horizon(), Still(), store, 2, only_success=True, max_attempts=4, progress=False)
    message = str(err.value)
    assert message.startswith("only 0 of 2 episodes saved after 4 attempts (0 successful); the failed attempts' labels: 4 'terminated'")
    assert "said in none of the 4 attempts whether the episode succeeded (no 'success' or 'is_success'; its last info had no keys)" in message
    assert "wrap the env to set info['success'] at every step" in message
    assert "dm_control: from the physics, as examples/dmc_reacher/envs.py does" in message  # an RL env says no success
    assert "or store every episode with only_success=false" in message
    assert f"all 4 failed episodes ended 'terminated' at step {HORIZON - 1}" in message
    assert "ignore_done=True inside gymnasium.wrappers.TimeLimit" in message
    assert message.endswith("else raise max_attempts or check the expert")


def test_a_success_under_another_name_is_pointed_at():
    """gym-hil says success as info['succeed']: the message names that key and the wrapper copying it."""
    from fiper.label_notes import no_success_reported

    message = no_success_reported(3, ["discrete_penalty", "succeed"], terminated=3)
    assert "its last info had ['discrete_penalty', 'succeed']; 'succeed' may be the env's success under a name of its " \
           "own: copy it to info['success'] in a wrapper" in message
    assert "under a name of its own" not in no_success_reported(3, ["discrete_penalty"])


def test_stored_failures_all_terminated_at_one_step_get_the_note_in_the_summary(tmp_path):
    summary = collect(Horizon(), Still(), EpisodeStore.create(tmp_path / "all.zarr"), 3, progress=False)
    assert summary.saved == 3 and f"all 3 failed episodes ended 'terminated' at step {HORIZON - 1}" in str(summary)


def test_an_env_that_labels_and_truncates_gets_no_note(tmp_path):
    store = EpisodeStore.create(tmp_path / "labelled.zarr")
    summary = collect(Horizon(labelled=True), Still(), store, 3, progress=False)
    assert list(store.meta("failure_reason")) == ["timeout"] * 3 and "terminated" not in str(summary)
    with pytest.raises(RuntimeError) as err:
        collect(Horizon(labelled=True), Still(), EpisodeStore.create(tmp_path / "none.zarr"), 1, only_success=True,
                max_attempts=3, progress=False)
    assert "3 'timeout'" in str(err.value) and "ignore_done" not in str(err.value)
    assert "wrap the env to set info['success']" not in str(err.value)  # it says success; that it never did is its own note


@pytest.mark.parametrize("failures", [[("terminated", 4)] * 2,                       # too few to be a pattern
                                      [("terminated", 4), ("terminated", 3), ("terminated", 4)],  # not one step
                                      [("dropped", 4)] * 3])                          # a reason the env gave
def test_no_note_without_the_pattern(failures):
    assert timeout_as_termination(failures) is None


def test_no_time_limit_note_when_every_episode_ended_before_the_declared_limit():
    """gym-hil's PandaPickCube reports success as info['succeed'] and terminates on it: every expert episode ended at
    step 12 of a 100-step limit, which is no time limit reported as termination."""
    assert timeout_as_termination([("terminated", 12)] * 3, step_limit=100) is None
    assert "ended 'terminated' at step 99" in timeout_as_termination([("terminated", 99)] * 3, step_limit=100)
    assert "ended 'terminated' at step 12" in timeout_as_termination([("terminated", 12)] * 3)  # no limit declared


def test_collection_passes_the_declared_limit_to_the_note(tmp_path):
    env = gym.wrappers.TimeLimit(Horizon(), max_episode_steps=HORIZON + 10)  # ends itself before its declared limit
    summary = collect(env, Still(), EpisodeStore.create(tmp_path / "early.zarr"), 3, progress=False)
    assert summary.saved == 3 and "ended 'terminated' at step" not in str(summary)


class SaysWhy(Horizon):
    """Ends every episode at step 2 with terminated and says why in words of its own, not in failure_reason."""

    def step(self, action):
        self.t += 1
        done = self.t >= 2
        return np.zeros(2, np.float32), 0.0, done, False, {"success": False, "why_it_ended": "box fell off the table" if done else ""}


def test_a_reason_in_words_of_the_envs_own_is_named_with_info_failure_reason_as_the_fix(tmp_path):
    """An env that says why an episode ended under a key of its own gets its failures labelled 'terminated': collection
    and the stress sweep's table name the key, its words and info['failure_reason']."""
    from types import SimpleNamespace

    from fiper.control.loop import run_episode
    from fiper.control.sweep import SweepSummary

    summary = collect(SaysWhy(), Still(), EpisodeStore.create(tmp_path / "why.zarr"), 3, progress=False)
    assert "3 failed episodes ended terminated without info['failure_reason'] (one's final info said " \
           "why_it_ended='box fell off the table', which fiper does not read)" in str(summary)
    assert "set info['failure_reason'] on the step that ends them" in str(summary)

    agent = SimpleNamespace(reset=lambda seed: None, bind_env=lambda env: None, history=SimpleNamespace(shapes=None),
                            act=lambda obs: np.zeros(2, np.float32), last_info={}, decisions=[])
    result = run_episode(SaysWhy(), agent, seed=0, record_keys=["obs"])
    assert result.labels["failure_reason"] == "terminated" and result.unread == {"why_it_ended": "box fell off the table"}
    sweep = SweepSummary(unnamed=1, unnamed_words=result.unread)
    assert "note: 1 failed episode ended terminated without info['failure_reason']" in sweep.table()
    silent = collect(Horizon(), Still(), EpisodeStore.create(tmp_path / "silent.zarr"), 3, progress=False)
    assert "without info['failure_reason']" not in str(silent)  # an env that says nothing: the default, no note


class SucceedsThenUndoes(Horizon):
    """Says success at step 1 only, then runs on to its time limit, as Meta-World's episodes do after a success that
    its scripted policy then pushes past (its success is the puck within 5 cm of the goal at that step)."""

    def step(self, action):
        self.t += 1
        return np.zeros(2, np.float32), 0.0, False, self.t >= HORIZON, {"success": float(self.t == 2)}


def test_a_success_said_before_the_last_step_and_lost_is_named_with_ending_the_episode_there(tmp_path):
    summary = collect(SucceedsThenUndoes(), Still(), EpisodeStore.create(tmp_path / "lost.zarr"), 2, progress=False)
    assert summary.successes == 0 and "2 of the 2 failed attempts said success at an earlier step (the first at step 1) " \
                                      "but not at their last" in str(summary)
    assert "end the episode there in the env factory (a wrapper returning terminated=True at the first success)" in str(summary)
    with pytest.raises(RuntimeError, match=r"said success at an earlier step .*else raise max_attempts"):
        collect(SucceedsThenUndoes(), Still(), EpisodeStore.create(tmp_path / "none.zarr"), 1, only_success=True,
                max_attempts=2, progress=False)
    labelled = collect(Horizon(labelled=True), Still(), EpisodeStore.create(tmp_path / "never.zarr"), 2, progress=False)
    assert "earlier step" not in str(labelled)  # failures that never said success: no note


def test_attempts_that_all_start_alike_whatever_their_seed_get_a_note_naming_reset_seed(tmp_path):
    """A Meta-World env given one task and nothing else starts every episode the same: the summary says so; an env
    whose start follows the seed does not get the note, nor a collection of fewer than 3 attempts."""

    class FromSeed(Horizon):
        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            return np.full(2, float(seed or 0), np.float32), {}

    alike = collect(Horizon(labelled=True), Still(), EpisodeStore.create(tmp_path / "alike.zarr"), 3, progress=False)
    assert "all 3 attempts started from the same observation, each with its own seed: if the task's start should vary, " \
           "draw it from the seed in reset(seed)" in str(alike)
    apart = collect(FromSeed(labelled=True), Still(), EpisodeStore.create(tmp_path / "apart.zarr"), 3, progress=False)
    two = collect(Horizon(labelled=True), Still(), EpisodeStore.create(tmp_path / "two.zarr"), 2, progress=False)
    assert "same observation" not in str(apart) and "same observation" not in str(two)


def test_a_success_key_false_at_every_step_of_every_attempt_names_the_envs_success_test(tmp_path):
    """gym-xarm's XarmLift reports info['is_success'], false whatever the expert does: the message says the key never
    turned true, so the env's success test is suspect as well as the expert; an env that said success once does not
    get it, nor one that reports no success key (its own note)."""
    with pytest.raises(RuntimeError) as err:
        collect(Horizon(labelled=True), Still(), EpisodeStore.create(tmp_path / "never.zarr"), 2, only_success=True,
                max_attempts=3, progress=False)
    assert "the env's info['success'] was false at every step of all 3 attempts: if the expert reached the goal" in str(err.value)
    assert "set info['success'] from the task's state in the env factory" in str(err.value)
    for env in (SucceedsThenUndoes(), Horizon()):
        with pytest.raises(RuntimeError) as other:
            collect(env, Still(), EpisodeStore.create(tmp_path / f"{type(env).__name__}.zarr"), 1, only_success=True,
                    max_attempts=2, progress=False)
        assert "was false at every step" not in str(other.value)
