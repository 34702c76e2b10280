"""Generic collection loop, the launch.collect entry point and user-supplied env/expert factories."""

from __future__ import annotations

import textwrap
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import envs
from fiper.collection import collect, episode_labels, run_episode
from fiper.env_factory import make_env_from_config, resolve
from fiper.storage import EpisodeStore
from gym_stubs import NestedArm, Push

CONF = str(Path(__file__).resolve().parents[1] / "launch" / "conf")

TINY_ENV = textwrap.dedent('''
    """A one-dimensional walk to a goal: the smallest env a user might bring."""
    import gymnasium as gym
    import numpy as np

    class Walk(gym.Env):
        observation_space = gym.spaces.Box(-10, 10, (1,), np.float32)
        action_space = gym.spaces.Box(-1, 1, (1,), np.float32)

        def __init__(self, goal=3):
            self.goal = goal

        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            self.x, self.t = 0.0, 0
            return np.array([self.x], np.float32), {}

        def step(self, action):
            self.x += float(action[0])
            self.t += 1
            done = self.x >= self.goal
            return np.array([self.x], np.float32), float(done), done, self.t >= 20, {"is_success": done}

    def make(goal=3):
        return Walk(goal)

    class Stepper:
        def __init__(self, env):
            self.env = env

        def reset(self, seed=None):
            self.rng = np.random.default_rng(seed)

        def act(self, obs, info):
            return np.array([1.0 if self.rng.uniform() < 0.9 else 0.0], np.float32)
''')


@pytest.fixture
def tiny_module(tmp_path, monkeypatch) -> str:
    (tmp_path / "tiny_user_env.py").write_text(TINY_ENV)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "tiny_user_env"


def test_collect_writes_episodes_with_labels(tmp_path):
    env = envs.make_env("pick_place")
    expert = envs.make_expert(env)
    store = EpisodeStore.create(tmp_path / "demo.zarr", attrs={"note": "test"})
    summary = collect(env, expert, store, 3, seed=10, progress=False)
    assert (summary.saved, summary.attempted, summary.seeds) == (3, 3, [10, 11, 12])
    assert str(summary).startswith("saved 3 episodes from 3 attempts (3 successful)")
    summary.saved = summary.attempted = summary.successes = 1
    assert str(summary).startswith("saved 1 episode from 1 attempt (1 successful)")

    store = EpisodeStore.open(tmp_path / "demo.zarr")
    assert store.n_episodes == 3 and store.data_keys == ["action", "agent_pos", "object", "obstacle"]
    assert {"success", "failure_step", "failure_reason", "seed", "shift", "severity"} <= set(store.meta_keys)
    np.testing.assert_array_equal(store.meta("seed"), [10, 11, 12])
    assert store.meta("success").all() and (store.meta("failure_step") == -1).all()
    assert list(store.meta("shift")) == ["none"] * 3
    ep = store.episode(1)
    assert ep["action"].shape == (store.episode_lengths[1], 4) and ep["object"].shape[1] == 7
    first_obs, _ = env.reset(seed=11)  # row 0 is the reset observation of that seed
    np.testing.assert_array_equal(ep["object"][0], first_obs["object"])
    replay = run_episode(env, expert, 11)
    np.testing.assert_array_equal(replay.data["action"], ep["action"])


def test_failed_episodes_keep_their_failure_step_or_are_skipped(tmp_path):
    env = envs.make_env("pick_place", shifts=[("obstacle", 1.0)])
    expert = envs.make_expert(env)
    store = EpisodeStore.create(tmp_path / "all.zarr")
    collect(env, expert, store, 2, progress=False)
    assert not store.meta("success").any()
    steps = store.meta("failure_step")
    assert np.all((steps >= 0) & (steps < store.episode_lengths))
    assert list(store.meta("failure_reason")) == ["obstacle_collision"] * 2
    assert list(store.meta("shift")) == ["obstacle"] * 2 and np.allclose(store.meta("severity"), 1.0)
    with pytest.raises(RuntimeError, match="only 0 of 2 episodes saved after 3 attempts"):
        collect(env, expert, EpisodeStore.create(tmp_path / "ok.zarr"), 2, only_success=True, max_attempts=3, progress=False)


def test_resolve_reads_a_module_or_a_file_anywhere(tmp_path):
    """'package.module:function' on the path, or 'path/to/file.py:function' outside it (a user's own env file)."""
    assert resolve("envs:make_env") is envs.make_env
    (tmp_path / "my_envs.py").write_text("def make(**kwargs):\n    return ('made', kwargs)\n")
    assert resolve(f"{tmp_path / 'my_envs.py'}:make")(seed=1) == ("made", {"seed": 1})
    with pytest.raises(ValueError, match=r"cannot import the file .*nowhere.py.*no such file"):
        resolve(f"{tmp_path / 'nowhere.py'}:make")
    with pytest.raises(ValueError, match=r"has no attribute 'mak'.*make"):
        resolve(f"{tmp_path / 'my_envs.py'}:mak")


def test_resolve_reports_what_went_wrong():
    assert resolve("envs:make_env") is envs.make_env
    with pytest.raises(ValueError, match="expected 'module:function'"):
        resolve("envs.make_env")
    with pytest.raises(ValueError, match="cannot import module 'no_such_pkg'"):
        resolve("no_such_pkg:make")
    with pytest.raises(ValueError, match="has no attribute 'make_envv'.*make_env"):
        resolve("envs:make_envv")


def test_labels_fall_back_for_plain_envs():
    assert episode_labels({"is_success": True}, True, False, 9)["failure_step"] == -1
    labels = episode_labels({}, False, True, 9)
    assert (labels["success"], labels["failure_step"], labels["failure_reason"], labels["shift"]) == (False, 9, "timeout", "none")


def test_a_failure_the_env_reports_as_no_failure_gets_the_default_labels():
    """An env that sets failure_reason='' and failure_step=-1 at every step until something happens: its timeout is a
    'timeout' at the last step (the outcome sweep counts '' as damage), its unexplained end 'terminated' at that step."""
    quiet = {"is_success": False, "failure_reason": "", "failure_step": -1}
    assert episode_labels(quiet, False, True, 99) | {"shift": "none"} == {
        "success": False, "failure_step": 99, "failure_reason": "timeout", "shift": "none", "severity": 0.0}
    assert (episode_labels(quiet, True, False, 12)["failure_reason"], episode_labels(quiet, True, False, 12)["failure_step"]) == ("terminated", 12)
    assert episode_labels({**quiet, "failure_reason": None, "failure_step": None}, False, True, 5)["failure_step"] == 5
    named = episode_labels({"failure_reason": "obstacle_collision", "failure_step": 7}, True, False, 7)
    assert (named["failure_reason"], named["failure_step"]) == ("obstacle_collision", 7)  # what the env names is kept
    success = episode_labels({"is_success": True, "failure_reason": "", "failure_step": -1}, True, False, 30)
    assert (success["failure_reason"], success["failure_step"]) == ("", -1)


def test_user_factory_gets_only_what_it_accepts(tiny_module):
    env = make_env_from_config({"factory": f"{tiny_module}:make", "name": "push_t", "obs_mode": "lowdim", "kwargs": {"goal": 2}})
    assert env.goal == 2
    with pytest.raises(ValueError, match="no 'shifts' parameter"):
        make_env_from_config({"factory": f"{tiny_module}:make", "shifts": [["mass", 0.5]]})


def test_a_factory_forwarding_its_keywords_to_gym_make_gets_only_what_is_set(tmp_path, monkeypatch):
    """name/obs_mode null and no shifts are not passed: gym.make('InvertedPendulum-v5', **kwargs) would refuse them."""
    (tmp_path / "forwarding_env.py").write_text("import gymnasium as gym\n\ndef make(**kwargs):\n"
                                                "    return gym.make('InvertedPendulum-v5', **kwargs)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    env = make_env_from_config({"factory": "forwarding_env:make", "name": None, "obs_mode": None, "shifts": [],
                                "kwargs": {"max_episode_steps": 7}})
    assert env.spec.max_episode_steps == 7


def test_an_env_with_discrete_actions_is_refused_naming_the_space_and_the_wrapper(tmp_path, monkeypatch):
    """CartPole's Discrete(2): refused when built, as a message the entry points print (a ValueError), not gymnasium's assert."""
    from launch.validate import reported

    (tmp_path / "discrete_env.py").write_text("import gymnasium as gym\n\ndef make():\n    return gym.make('CartPole-v1')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(SystemExit, match=r"error: env.factory=discrete_env:make returned an env whose action space is Discrete\(2\);"
                                         r".*1-d gymnasium Box action space of floats. Wrap it \(gymnasium.ActionWrapper\)"):
        with reported():
            make_env_from_config({"factory": "discrete_env:make"})


@pytest.mark.parametrize("space, example", [
    (gym.spaces.Box(-1, 1, (2,), np.int64), "action(a) = np.rint(a).astype(np.int64)"),
    (gym.spaces.Box(0, 1, (3,), np.bool_), "action(a) = np.rint(a).astype(np.bool)"),
    (gym.spaces.Box(-1, 1, (1, 2), np.float32), "action(a) = a.reshape((1, 2))"),
    (gym.spaces.Dict({"move": gym.spaces.Box(-1, 1, (2,))}), "one Box of every part's entries"),
    (gym.spaces.MultiDiscrete([3, 3]), "whose sign picks a Discrete(2) choice"),
])
def test_an_integer_or_not_flat_action_space_is_refused_when_built_naming_the_wrapper_for_it(space, example):
    """An integer Box would get the policies' floats between its integers (collection stepped it with floats too):
    refused with Discrete, each with the ActionWrapper that fits its space."""
    from fiper.env_factory import SetupError, checked_env

    class Odd(gym.Env):
        observation_space = gym.spaces.Box(-1, 1, (2,))
        action_space = space

    with pytest.raises(SetupError) as raised:
        checked_env(Odd(), "env.factory=m:make")
    assert str(raised.value).startswith(f"env.factory=m:make returned an env whose action space is {space}; ")
    assert "needs a 1-d gymnasium Box action space of floats" in str(raised.value) and example in str(raised.value)


def test_an_error_inside_the_env_factory_is_printed_with_the_setting_and_the_call_that_raised_it(tmp_path, monkeypatch):
    """A third-party env's own message (panda-gym refusing render_mode=None) says nothing of fiper's config: the entry
    points print, after it, which factory raised it and how it was called; its type and message are kept."""
    from launch.stress import env_builder
    from launch.validate import reported

    (tmp_path / "refusing_env.py").write_text(
        "def make(render_mode=None, **kwargs):\n"
        "    raise ValueError(\"The 'render' argument is must be in {'rgb_array', 'human'}\")\n\n"
        "def shifted(severity, **kwargs):\n"
        "    raise ValueError('no such friction')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(SystemExit, match=r"error: The 'render' argument is must be in \{'rgb_array', 'human'\}\n\(raised while "
                                         r"building the env: env.factory=refusing_env:make, called as make\(level=3\)\)\n"):
        with reported():
            make_env_from_config({"factory": "refusing_env:make", "name": None, "kwargs": {"level": 3}})
    make_env = env_builder({"factory": "refusing_env:make", "kwargs": {}}, {"slippery": "refusing_env:shifted"}, ["slippery"])
    with pytest.raises(ValueError) as raised:
        make_env("slippery", 1.0)
    assert str(raised.value) == "no such friction"  # the message is the env's own
    assert raised.value.__notes__ == ["(raised while building the env: factories.slippery=refusing_env:shifted, called as "
                                      "shifted(severity=1.0))"]



class LastAction(gym.Env):
    """Observes its position and the last action, under the key 'action'."""

    observation_space = gym.spaces.Dict({"pos": gym.spaces.Box(-10, 10, (1,), np.float32),
                                         "action": gym.spaces.Box(-1, 1, (1,), np.float32)})
    action_space = gym.spaces.Box(-1, 1, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x, self.t = 0.0, 0
        return {"pos": np.array([0.0], np.float32), "action": np.array([0.0], np.float32)}, {}

    def step(self, action):
        self.x += float(action[0])
        self.t += 1
        done = self.x >= 2
        obs = {"pos": np.array([self.x], np.float32), "action": np.asarray(action, np.float32)}
        return obs, float(done), done, self.t >= 10, {"is_success": done}


def test_an_observation_key_named_action_is_refused_with_the_renaming_wrapper_that_fixes_it(tmp_path):
    with pytest.raises(ValueError, match=r"observation key is named 'action'.*TransformObservation"):
        collect(LastAction(), Push(), EpisodeStore.create(tmp_path / "refused.zarr"), n_episodes=2, seed=0)
    assert EpisodeStore.open(tmp_path / "refused.zarr").n_episodes == 0  # nothing half-written
    env = LastAction()
    space = gym.spaces.Dict({"pos": env.observation_space["pos"], "prev_action": env.observation_space["action"]})
    renamed = gym.wrappers.TransformObservation(env, lambda o: {("prev_action" if k == "action" else k): v for k, v in o.items()}, space)
    store = EpisodeStore.create(tmp_path / "renamed.zarr")
    collect(renamed, Push(), store, n_episodes=2, seed=0)
    assert store.n_episodes == 2 and {"pos", "prev_action", "action"} <= set(store.data_keys)


def test_a_nested_observation_is_stored_and_read_back_under_dotted_keys(tmp_path):
    """Nested dicts are flattened to numeric arrays under 'robot.pos', not stored as their text; the control loop's
    history builds the same keys; two names that flatten alike are refused."""
    from fiper.env_io import observation_dict
    from fiper.control.history import ObsHistory

    store = EpisodeStore.create(tmp_path / "nested.zarr")
    collect(NestedArm(), Push(), store, n_episodes=2, seed=0)
    assert set(store.data_keys) == {"action", "goal", "robot.pos", "robot.vel"}
    pos = store.read_data("robot.pos")
    assert pos.dtype == np.float32 and pos.shape == (8, 2) and pos[:4, 0].tolist() == [0, 1, 2, 3]
    frame = ObsHistory(["robot.pos", "goal"], n_obs_steps=2, shapes={"robot.pos": (2,), "goal": (2,)}).frame(NestedArm().reset(seed=0)[0])
    assert set(frame) == {"robot.pos", "goal"} and frame["robot.pos"].tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match=r"flattens to the key 'robot.pos' twice; rename one"):
        observation_dict({"robot": {"pos": 1}, "robot.pos": 2})


class Glitch(NestedArm):
    """Its position reads NaN at step 2 of seed 1 (a sensor without data)."""

    def _obs(self):
        obs = super()._obs()
        if getattr(self, "seed_used", 0) == 1 and self.t == 2:
            obs["goal"] = np.array([np.nan, 0.0], np.float32)
        return obs

    def reset(self, *, seed=None, options=None):
        self.seed_used = seed
        return super().reset(seed=seed, options=options)


def test_a_non_finite_observation_stops_the_collection_naming_it_and_keeps_the_episodes_before(tmp_path):
    store = EpisodeStore.create(tmp_path / "glitch.zarr")
    with pytest.raises(ValueError, match=r"observation 'goal' at step 2 of seed 1 holds 1 NaN or inf values.*episodes stored "
                                         r"before it are kept"):
        collect(Glitch(), Push(), store, n_episodes=3, seed=0)
    assert EpisodeStore.open(tmp_path / "glitch.zarr").n_episodes == 1  # seed 0, stored whole


BATCHED_ENV = textwrap.dedent('''
    """An env shaped like ManiSkill3's: batched torch tensors with a leading env axis, even for one env."""
    import gymnasium as gym
    import numpy as np
    import torch

    class Batched(gym.Env):
        def __init__(self, num_envs=1, goal=3.0):
            self.num_envs, self.goal = num_envs, goal
            self.single_observation_space = gym.spaces.Box(-10, 10, (2,), np.float32)
            self.single_action_space = gym.spaces.Box(-1, 1, (1,), np.float32)
            self.observation_space = gym.spaces.Box(-10, 10, (num_envs, 2), np.float32)
            # ManiSkill's one env takes one action; several take one per env
            self.action_space = self.single_action_space if num_envs == 1 else gym.spaces.Box(-1, 1, (num_envs, 1), np.float32)

        def _obs(self):
            return torch.tensor([[self.x, self.goal]] * self.num_envs, dtype=torch.float32)

        def reset(self, *, seed=None, options=None):
            self.x, self.t = 0.0, 0
            return self._obs(), {"elapsed_steps": torch.zeros(self.num_envs, dtype=torch.int32), "success": torch.zeros(self.num_envs, dtype=torch.bool)}

        def step(self, action):
            self.x += float(np.asarray(action).reshape(-1)[0])
            self.t += 1
            success = torch.tensor([self.x >= self.goal] * self.num_envs)
            truncated = torch.tensor([self.t >= 20] * self.num_envs)
            return self._obs(), success.float(), success.clone(), truncated, {"elapsed_steps": torch.tensor([self.t]), "success": success}

    def make(num_envs=1, goal=3.0):
        return Batched(num_envs, goal)

    def make_vector():
        return gym.vector.SyncVectorEnv([lambda: gym.make("Pendulum-v1")])

    class Expert:
        def __init__(self, env):
            pass

        def reset(self, seed=None):
            pass

        def act(self, obs, info):
            return np.array([1.0], np.float32)
''')


@pytest.fixture
def batched_module(tmp_path, monkeypatch) -> str:
    (tmp_path / "batched_user_env.py").write_text(BATCHED_ENV)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "batched_user_env"


def test_a_one_env_batched_tensor_env_is_collected_with_its_env_axis_and_tensor_labels(batched_module, tmp_path):
    """ManiSkill's gym.make with num_envs=1: observation (1, D) tensors, terminated / truncated / info['success'] as (1,)
    tensors. Collected as it comes: the observation stored as (1, D) per step, success and timeouts labelled."""
    env = make_env_from_config({"factory": f"{batched_module}:make", "kwargs": {}})
    expert = resolve(f"{batched_module}:Expert")(env)
    won = run_episode(env, expert, seed=0)
    assert won.success and won.failure_step == -1 and won.length == 3
    assert won.data["obs"].shape == (3, 1, 2) and won.data["obs"].dtype == np.float32
    assert won.data["obs"][:, 0, 0].tolist() == [0.0, 1.0, 2.0]
    lost = run_episode(make_env_from_config({"factory": f"{batched_module}:make", "kwargs": {"goal": 30.0}}), expert, seed=1)
    assert not lost.success and (lost.failure_step, lost.failure_reason, lost.length) == (19, "timeout", 20)
    store = EpisodeStore.create(tmp_path / "b.zarr")
    assert collect(env, expert, store, 2, progress=False).successes == 2
    assert store.data_array("obs").shape == (6, 1, 2)


@pytest.mark.parametrize(("factory", "kwargs", "shown"), [
    ("make", {"num_envs": 4}, r"num_envs=4; its action space Box\(-1.0, 1.0, \(4, 1\), float32\), one env's Box\(-1.0, 1.0, \(1,\), float32\)"),
    ("make_vector", {}, r"num_envs=1; its action space Box\(-2.0, 2.0, \(1, 1\), float32\), one env's Box\(-2.0, 2.0, \(1,\), float32\)"),
])
def test_an_env_stepping_several_envs_or_with_an_env_axis_on_its_actions_is_refused_naming_one_env(batched_module, factory, kwargs, shown):
    """Not the message for a non-Box action space: the fix is one env (ManiSkill's CPUGymWrapper), not an ActionWrapper."""
    from launch.validate import reported

    with pytest.raises(SystemExit, match=rf"error: env.factory={batched_module}:{factory} returned a batched env \({shown}\); fiper runs "
                                         r"one env .*CPUGymWrapper\(gymnasium.make\(id, num_envs=1, sim_backend='cpu'\)\)"):
        with reported():
            make_env_from_config({"factory": f"{batched_module}:{factory}", "kwargs": kwargs})
