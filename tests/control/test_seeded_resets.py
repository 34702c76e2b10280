"""The outcome sweep pairs runs by seed: an env whose reset(seed) does not fix the episode (its start, or the steps that
follow it) is refused before it runs."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import envs
from fiper.env_factory import SetupError
from fiper.control.seeded_resets import check_actions, check_seeded_resets


class UnseededGoal(gym.Wrapper):
    """Draws a goal at every reset from a generator the seed never reaches (as Meta-World's gym.make picks a task)."""

    def __init__(self, env, reseed: bool):
        super().__init__(env)
        self.reseed, self.rng = reseed, np.random.default_rng()

    def reset(self, *, seed=None, options=None):
        if self.reseed and seed is not None:
            self.rng = np.random.default_rng(seed)
        obs, info = self.env.reset(seed=seed, options=options)
        return {"obs": obs, "goal": self.rng.uniform(-1, 1, 2)}, info


def builder(reseed_shifted: bool):
    return lambda shift, severity: UnseededGoal(gym.make("Pendulum-v1"), reseed=shift == "none" or reseed_shifted)


def test_an_env_whose_seed_does_not_fix_the_episode_is_refused_naming_the_cell_and_the_fix():
    cells = [("none", 0.0), ("goal", 1.0)]
    check_seeded_resets(builder(True), cells, "launch.act")  # every random choice follows the seed: passes
    with pytest.raises(SetupError, match=r"launch.act: the env of cell \(goal, 1\) started a different episode from "
                                         r"reset\(seed=0\) the second time .*observation 'goal' differed.*set_task.*"
                                         r"metaworld.MT1\(env_name, seed=0\); robosuite's GymWrapper seeds numpy's global generator.*reseed env.unwrapped.rng.*act=null"):
        check_seeded_resets(builder(False), cells, "launch.act")


class CarriedState(gym.Wrapper):
    """Starts every episode from its seed, but steps from a state that reset leaves as the last episode left it
    (as PyBullet keeps its contact caches when panda-gym puts the bodies back)."""

    def __init__(self, env, clear_on_reset: bool):
        super().__init__(env)
        self.clear, self.carried = clear_on_reset, 0.0

    def reset(self, *, seed=None, options=None):
        if self.clear:
            self.carried = 0.0
        return self.env.reset(seed=seed, options=options)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.carried += float(np.asarray(action).sum())
        return obs + 1e-3 * self.carried, reward, terminated, truncated, info


def test_an_env_that_keeps_state_across_reset_is_refused_after_the_same_actions_ran_another_episode():
    cells = [("none", 0.0), ("carry", 1.0)]
    check_seeded_resets(lambda shift, sev: CarriedState(gym.make("Pendulum-v1"), clear_on_reset=True), cells, "launch.act")
    with pytest.raises(SetupError, match=r"launch.act: the env of cell \(none, 0\) started the same episode from reset\(seed=0\) "
                                         r"the second time \(after an episode with seed 1\) but, given the same 10 actions, ran "
                                         r"another: 'obs' differed after step 1\..*PyBullet.*act=null"):
        check_seeded_resets(lambda shift, sev: CarriedState(gym.make("Pendulum-v1"), clear_on_reset=False), cells, "launch.act")


class StartsFromCarriedState(CarriedState):
    """Seeds every random choice, but its start shows what the last episode left (gym-xarm's reset keeps the gripper's
    last command, which the next episode's first observation shows)."""

    def reset(self, *, seed=None, options=None):
        obs, info = super().reset(seed=seed, options=options)
        return obs + 1e-3 * self.carried, info


def test_a_start_that_shows_the_last_episode_is_refused_naming_the_state_to_put_back():
    with pytest.raises(SetupError, match=r"started a different episode from reset\(seed=0\) the second time .*reseed every "
                                         r"random choice.* and put back every state the last episode left that the start "
                                         r"depends on \(gym-xarm's reset keeps the gripper's last command.*mj_resetData.*act=null"):
        check_seeded_resets(lambda shift, sev: StartsFromCarriedState(gym.make("Pendulum-v1"), clear_on_reset=False),
                            [("none", 0.0)], "launch.act")
    check_seeded_resets(lambda shift, sev: StartsFromCarriedState(gym.make("Pendulum-v1"), clear_on_reset=True),
                        [("none", 0.0)], "launch.act")


class EndsByCarriedState(CarriedState):
    """Ends its episode once the state carried over from earlier episodes is large, with an observation that never shows it."""

    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        return obs - 1e-3 * self.carried, reward, terminated or abs(self.carried) > 2.0, truncated, info


def test_an_episode_that_ends_at_another_step_after_the_same_actions_is_refused_naming_both_ends():
    with pytest.raises(SetupError, match=r"given the same 10 actions, ran another: it ended after step \d+ the first time and "
                                         r"after step \d+ the second"):
        check_seeded_resets(lambda shift, sev: EndsByCarriedState(gym.make("Pendulum-v1"), clear_on_reset=False),
                            [("none", 0.0)], "launch.act")


class TensorBatched(gym.Wrapper):
    """Returns what ManiSkill's one env returns: torch tensors with a leading env axis of 1 (observation (1, D),
    terminated / truncated (1,) bool tensors)."""

    def reset(self, *, seed=None, options=None):
        import torch

        obs, info = self.env.reset(seed=seed, options=options)
        return torch.as_tensor(obs)[None], info

    def step(self, action):
        import torch

        obs, reward, terminated, truncated, info = self.env.step(action)
        return torch.as_tensor(obs)[None], torch.tensor([reward]), torch.tensor([terminated]), torch.tensor([truncated]), info


def test_an_env_returning_batched_tensors_is_checked_like_one_returning_arrays():
    cells = [("none", 0.0)]
    check_seeded_resets(lambda shift, sev: TensorBatched(CarriedState(gym.make("Pendulum-v1"), clear_on_reset=True)), cells, "launch.act")
    with pytest.raises(SetupError, match=r"given the same 10 actions, ran another: 'obs' differed after step 1\."):
        check_seeded_resets(lambda shift, sev: TensorBatched(CarriedState(gym.make("Pendulum-v1"), clear_on_reset=False)), cells,
                            "launch.act")
    with pytest.raises(SetupError, match=r"ran another: it ended after step \d+ the first time and after step \d+ the second"):
        check_seeded_resets(lambda shift, sev: TensorBatched(EndsByCarriedState(gym.make("Pendulum-v1"), clear_on_reset=False)), cells,
                            "launch.act")


class ContactCache(gym.Env):
    """A pusher on a line and an object 4 m ahead: once they touch, the object moves by the push plus a solver state
    that reset keeps (as PhysX keeps its contact state across ManiSkill's reset unless the scene is rebuilt)."""

    observation_space = gym.spaces.Box(-100.0, 100.0, (2,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def __init__(self, clear_on_reset: bool):
        self.clear, self.cache = clear_on_reset, 0.0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.pusher, self.object, self.t = 0.0, 4.0, 0
        self.cache = 0.0 if self.clear else self.cache
        return np.array([self.pusher, self.object], np.float32), {}

    def step(self, action):
        self.pusher += float(action[0])
        self.t += 1
        if self.pusher >= self.object - 0.5:  # in contact
            self.object += 0.5 * float(action[0]) + self.cache
            self.cache += 0.01
        obs = np.array([self.pusher, self.object], np.float32)
        return obs, 0.0, self.object >= 6.0, self.t >= 30, {}


class Forward:
    """An expert that pushes: +1 every step."""

    def __init__(self, env):
        pass

    def reset(self, seed=None):
        pass

    def act(self, obs, info):
        return np.ones(1, np.float32)


def test_state_kept_across_reset_that_shows_only_after_contact_is_refused_with_the_experts_actions():
    """The fixed random actions never reach the object, so they pass an env whose episodes drift once it is pushed;
    the expert's episode pushes it, and the check names the drift and the fix."""
    cells = [("none", 0.0)]
    check_seeded_resets(lambda shift, sev: ContactCache(clear_on_reset=False), cells, "launch.act")  # what random actions see
    with pytest.raises(SetupError, match=r"launch.act: the env of cell \(none, 0\) started the same episode from reset\(seed=0\) the "
                                         r"second time \(after an episode with seed 1\) but, given the same \d+ expert's actions, ran "
                                         r"another: 'obs' differed after step 4\..*reconfiguration_freq=1"):
        check_seeded_resets(lambda shift, sev: ContactCache(clear_on_reset=False), cells, "launch.act", expert=Forward)
    check_seeded_resets(lambda shift, sev: ContactCache(clear_on_reset=True), cells, "launch.act", expert=Forward)


def test_the_check_steps_the_same_actions_inside_the_action_space_every_time():
    space = gym.spaces.Box(low=np.array([-2.0, 0.0], np.float32), high=np.array([2.0, np.inf], np.float32), dtype=np.float32)
    first, again = check_actions(space, 0), check_actions(space, 0)
    assert len(first) == 10 and all(np.array_equal(a, b) for a, b in zip(first, again))
    stacked = np.stack(first)
    assert stacked.dtype == np.float32 and (stacked[:, 0] >= -2).all() and (stacked[:, 0] <= 2).all()
    assert (stacked[:, 1] >= 0).all() and (stacked[:, 1] <= 1).all()  # an infinite bound draws from [-1, 1] on that side
    assert not np.array_equal(stacked, np.stack(check_actions(space, 1)))


@pytest.mark.parametrize("task", ["pick_place", "push_t"])
def test_the_shipped_tasks_start_the_same_episode_from_a_seed(task):
    cells = [("none", 0.0), ("obstacle", 1.0), ("init_pose", 1.0), ("obs_noise", 0.5)]
    check_seeded_resets(lambda shift, sev: envs.make_env(task, shifts=[] if shift == "none" else [(shift, sev)]), cells, task)


@pytest.mark.parametrize("action, says", [(np.zeros(2), r"has shape \(2,\), the env's action space \(1,\); return one action per step"),
                                          (np.array([np.nan]), r"is not finite \(\[nan\]\)")])
def test_an_experts_bad_action_is_refused_as_collection_refuses_it(action, says):
    """The pipeline replays the expert's episode before it collects: an action of another shape, or not finite, is
    refused there with collection's message (naming the step and seed), not as numpy's broadcasting error."""
    class Bad:
        def __init__(self, env):
            pass

        def reset(self, seed=None):
            pass

        def act(self, obs, info):
            return action

    make = lambda shift, severity: gym.make("Pendulum-v1")  # noqa: E731
    with pytest.raises(ValueError, match=r"^here: the env of cell \(none, 0\), run with the expert: the expert's action at "
                                         rf"step 0 of seed 0 {says}"):
        check_seeded_resets(make, [("none", 0.0)], "here", expert=Bad)


class BuiltSize(gym.Wrapper):
    """Repeats its own episode from a seed, but draws an object's size when it is built, from a generator no seed
    reaches (as robosuite draws its Lift cube's size): a second env of the same cell starts another episode."""

    def __init__(self, env, seeded_build: bool):
        super().__init__(env)
        self.size = np.random.default_rng(0 if seeded_build else None).uniform(0.02, 0.022)

    def reset(self, *, seed=None, options=None):
        obs, info = self.env.reset(seed=seed, options=options)
        return {"obs": obs, "size": np.array([self.size])}, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return {"obs": obs, "size": np.array([self.size])}, reward, terminated, truncated, info


def test_an_env_that_draws_at_build_is_refused_naming_the_second_env_and_robosuites_seed():
    def make(seeded_build):
        return lambda shift, severity: BuiltSize(gym.make("Pendulum-v1"), seeded_build)

    check_seeded_resets(make(True), [("none", 0.0)], "launch.act")
    with pytest.raises(SetupError, match=r"launch.act: a second env of cell \(none, 0\), built the same way, started a different "
                                         r"episode from reset\(seed=0\) than the first \(observation 'size' differed\).*"
                                         r"robosuite.make\(\.\.\., seed=0\).*act=null"):
        check_seeded_resets(make(False), [("none", 0.0)], "launch.act")


class TasksAtBuild(gym.Wrapper):
    """Draws its list of tasks (goal positions) when it is built, and reset(seed) picks tasks[seed % len(tasks)]: as a
    Meta-World env wrapped to set the task from the seed, with the tasks of an unseeded ``metaworld.MT1(env_name)``."""

    def __init__(self, env, seeded_build: bool):
        super().__init__(env)
        self.tasks = np.random.default_rng(0 if seeded_build else None).uniform(-1, 1, (50, 2))
        self.goal = self.tasks[0]

    def reset(self, *, seed=None, options=None):
        if seed is not None:
            self.goal = self.tasks[seed % len(self.tasks)]
        obs, info = self.env.reset(seed=seed, options=options)
        return {"obs": obs, "goal": self.goal}, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return {"obs": obs, "goal": self.goal}, reward, terminated, truncated, info


def test_tasks_drawn_when_the_env_is_built_are_refused_naming_meta_worlds_seeded_benchmark():
    def make(seeded_build):
        return lambda shift, severity: TasksAtBuild(gym.make("Pendulum-v1"), seeded_build)

    check_seeded_resets(make(True), [("none", 0.0)], "launch.act")  # the task follows the seed, the list is fixed
    with pytest.raises(SetupError, match=r"launch.act: a second env of cell \(none, 0\), built the same way, started a different "
                                         r"episode from reset\(seed=0\) than the first \(observation 'goal' differed\).*"
                                         r"metaworld.MT1\(env_name, seed=0\) fixes them.*act=null"):
        check_seeded_resets(make(False), [("none", 0.0)], "launch.act")


class Blows(gym.Wrapper):
    """A simulation that fails when sent far from where it is (as gym-aloha's dm_control physics raises PhysicsError
    when random joint targets across the whole range make it unstable); gentle actions run."""

    def step(self, action):
        if np.abs(action).max() > 1.0:
            raise RuntimeError("Physics state is invalid. Warning(s) raised: mjWARN_BADQACC")
        return self.env.step(action)


class Gentle:
    def __init__(self, env):
        self.t = 0

    def reset(self, seed=None):
        self.t = 0

    def act(self, obs, info):
        self.t += 1
        return np.array([0.5 * np.sin(0.3 * self.t)], np.float32)


def test_random_actions_that_blow_up_the_simulation_fall_back_to_the_experts_or_name_it(capsys):
    make = lambda shift, severity: Blows(gym.make("Pendulum-v1", max_episode_steps=30))  # noqa: E731  (actions in [-2, 2])
    check_seeded_resets(make, [("none", 0.0)], "launch.act", expert=Gentle)  # the expert's episodes are checked instead
    assert ("note: launch.act: the env of cell (none, 0) raised RuntimeError: Physics state is invalid. Warning(s) raised: "
            "mjWARN_BADQACC while the seeded-reset check stepped 10 random actions drawn across its action space") in capsys.readouterr().out
    with pytest.raises(SetupError, match=r"launch.act: the env of cell \(none, 0\) raised RuntimeError: Physics state is "
                                         r"invalid.*; give the check the expert's actions instead, which move as the task does "
                                         r"\(launch.act expert=module:function; launch.pipeline passes collect.expert\), or skip "
                                         r"the outcome sweep \(the pipeline's act=null\)"):
        check_seeded_resets(make, [("none", 0.0)], "launch.act")
