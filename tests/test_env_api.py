"""What a user's env or expert does outside gymnasium's API or the expert contract (an old-gym tuple, an info that is no
dict, an observation that changes its layout mid-episode, methods that cannot take fiper's calls) is named with the fix."""

from __future__ import annotations

import numpy as np
import pytest

import envs
from fiper.collection import collect, run_episode
from fiper.storage import EpisodeStore
from gym_stubs import NestedArm, Push


class Shifting(NestedArm):
    """From step 2 of seed 1 its observation changes: ``change`` says how."""

    change = "drop"

    def _obs(self):
        obs = super()._obs()
        if getattr(self, "seed_used", 0) == 1 and self.t >= 2:
            if self.change == "drop":
                obs.pop("goal")
            else:
                obs["goal"] = np.zeros(3, np.float32)
        return obs

    def reset(self, *, seed=None, options=None):
        self.seed_used = seed
        return super().reset(seed=seed, options=options)


@pytest.mark.parametrize("change, shown", [("drop", "'goal' missing"), ("grow", r"'goal' \(2,\) -> \(3,\)")])
def test_an_observation_that_changes_its_keys_or_shapes_mid_episode_is_named_and_earlier_episodes_kept(tmp_path, change, shown):
    env = Shifting()
    env.change = change
    store = EpisodeStore.create(tmp_path / "shifting.zarr")
    with pytest.raises(ValueError, match=rf"observation at step 2 of seed 1 changed its layout \({shown}\).*episodes stored "
                                         r"before it are kept"):
        collect(env, Push(), store, n_episodes=3, seed=0)
    assert EpisodeStore.open(tmp_path / "shifting.zarr").n_episodes == 1


def test_an_info_that_is_no_dict_is_named_with_the_fix():
    from fiper.gym_api import checked_info

    class NoInfo(NestedArm):
        def step(self, action):
            return *super().step(action)[:4], None

    with pytest.raises(ValueError, match=r"the env's step 0 of seed 3 returned info of type NoneType, not a dict.*return \{\}"):
        run_episode(NoInfo(), Push(), seed=3)
    with pytest.raises(ValueError, match=r"the env's reset of seed 0 returned info of type list"):
        checked_info([], 0)
    assert checked_info({"a": 1}, 0, 2) == {"a": 1}


def test_an_env_of_the_old_gym_api_is_named_with_the_conversion():
    """reset returning the observation alone, or step four values, is named instead of an unpacking error (or a dict
    observation unpacked quietly into two of its keys)."""

    class OldReset(NestedArm):
        def reset(self, *, seed=None, options=None):
            return super().reset(seed=seed)[0]

    class OldStep(NestedArm):
        def step(self, action):
            obs, reward, terminated, truncated, info = super().step(action)
            return obs, reward, terminated or truncated, info

    with pytest.raises(ValueError, match=r"reset\(seed=2\) returned a dict, not \(obs, info\): the old gym API\?.*GymV21Environment"):
        run_episode(OldReset(), Push(), seed=2)
    with pytest.raises(ValueError, match=r"step 0 of seed 2 returned 4 values \(obs, reward, done, info\), not \(obs, reward, "
                                         r"terminated, truncated, info\)"):
        run_episode(OldStep(), Push(), seed=2)


def test_an_expert_whose_methods_cannot_take_the_calls_is_named_before_it_runs():
    from fiper.env_factory import checked_expert

    class NoSeed:
        def reset(self):
            pass

        def act(self, obs, info):
            return np.zeros(1)

    class NoInfo(NoSeed):
        def reset(self, seed=None):
            pass

        def act(self, obs):
            return np.zeros(1)

    class Flexible(NoSeed):
        def reset(self, *args, **kwargs):
            pass

        def act(self, obs, info=None, *rest):
            return np.zeros(1)

    with pytest.raises(ValueError, match=r"expert=m:NoSeed returned NoSeed, whose reset\(\) cannot be called as reset\(seed\)"):
        checked_expert(NoSeed(), "expert=m:NoSeed")
    with pytest.raises(ValueError, match=r"whose act\(obs\) cannot be called as act\(obs, info\)"):
        checked_expert(NoInfo(), "expert=m:NoInfo")
    assert isinstance(checked_expert(Flexible(), "expert=m:Flexible"), Flexible)
    for task in ("push_t", "sort", "pick_place"):  # fiper's own experts take the calls
        env = envs.make_env(task)
        checked_expert(envs.make_expert(env), task)


@pytest.mark.parametrize("env_id, module", [("ALE/Pong-v5", "ale_py"), ("Meta-World/MT1", "metaworld"),
                                            ("MyLab/Arm-v0", "<the package that registers them>")])
def test_an_id_whose_package_is_not_imported_gets_a_note_naming_the_module_in_the_id(env_id, module):
    """gymnasium.make given as the factory, with an id of a namespace nobody registered: gymnasium asks whether the
    package is installed; the note says that importing it registers the ids and how to name it in the id."""
    import gymnasium as gym

    from fiper.env_factory import make_env_from_config

    with pytest.raises(gym.error.NamespaceNotFound) as raised:
        make_env_from_config({"factory": "gymnasium:make", "kwargs": {"id": env_id}})
    namespace = env_id.split("/")[0]
    assert raised.value.__notes__[-1] == (
        f"gymnasium registers the {namespace}/ ids only once {module} is imported, installed or not: name it in the id, "
        f"env.kwargs.id={module}:{env_id}, or import it in an env factory of your own (gymnasium.register_envs({module}))")


def test_an_installed_module_named_as_the_namespace_is_named_in_the_note(tmp_path, monkeypatch):
    """A namespace fiper does not know, whose package is installed under its name lower-cased with '-' as '_' or
    dropped (Meta-World's metaworld, gym-hil's gym_hil), is named in the note rather than a placeholder."""
    import gymnasium as gym

    from fiper.env_factory import installed_module_named, make_env_from_config

    (tmp_path / "my_lab.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert installed_module_named("My-Lab") == "my_lab" and installed_module_named("No-Such-Lab") is None
    with pytest.raises(gym.error.NamespaceNotFound) as raised:
        make_env_from_config({"factory": "gymnasium:make", "kwargs": {"id": "My-Lab/Arm-v0"}})
    assert "env.kwargs.id=my_lab:My-Lab/Arm-v0" in raised.value.__notes__[-1]


def test_an_id_gymnasium_has_not_registered_ends_the_command_with_its_message_and_no_traceback(monkeypatch):
    """A typo'd id or one of a package not imported is bad input like fiper's own refusals: the entry points print
    gymnasium's message and fiper's notes, not a traceback; an error of another kind inside the factory keeps its traceback."""
    from fiper.env_factory import make_env_from_config
    from launch.validate import reported

    monkeypatch.delenv("FIPER_TRACEBACK", raising=False)
    with pytest.raises(SystemExit) as ended:
        with reported():
            make_env_from_config({"factory": "gymnasium:make", "kwargs": {"id": "Reachr-v5"}})
    assert str(ended.value).splitlines() == [
        "error: Environment `Reachr` doesn't exist. Did you mean: `Reacher`?",
        "(raised while building the env: env.factory=gymnasium:make, called as make(id='Reachr-v5'))",
        "(set FIPER_TRACEBACK=1 for the traceback)"]
    with pytest.raises(SystemExit, match=r"(?s)^error: Namespace MyLab not found.*env.kwargs.id=<the package that registers them>:MyLab/Arm-v0"):
        with reported():
            make_env_from_config({"factory": "gymnasium:make", "kwargs": {"id": "MyLab/Arm-v0"}})
    with pytest.raises(TypeError, match="can't multiply sequence"):
        with reported():
            make_env_from_config({"factory": "gymnasium:make", "kwargs": {"id": "InvertedPendulum-v5", "frame_skip": "two"}})


def test_the_default_groups_name_and_obs_mode_refused_by_a_forwarding_factory_name_the_override_that_drops_them():
    """env.factory=gymnasium:make on the command line keeps the default env group's name and obs_mode (fiper's own
    tasks), which gym.make forwards to the env's constructor: a SetupError (no traceback) says to set them to null."""
    from fiper.env_factory import SetupError, make_env_from_config

    with pytest.raises(SetupError) as raised:
        make_env_from_config({"factory": "gymnasium:make", "name": "push_t", "obs_mode": "lowdim",
                              "kwargs": {"id": "InvertedPendulum-v5"}})
    assert "env.name='push_t' and env.obs_mode='lowdim' reached the env through a factory taking **kwargs" in str(raised.value)
    assert "set env.name=null env.obs_mode=null in the env group" in str(raised.value)
    env = make_env_from_config({"factory": "gymnasium:make", "name": None, "obs_mode": None, "kwargs": {"id": "InvertedPendulum-v5"}})
    env.close()


def test_an_own_groups_task_name_refused_by_a_forwarding_factory_names_a_factory_parameter_that_keeps_it(tmp_path, monkeypatch):
    """An env group of one's own that names its task (name: my_task) with a factory forwarding **kwargs to the env's
    constructor: the refusal says how to keep the name (a parameter of the factory's own) besides dropping it, and the
    factory that takes it builds the env with the task so named."""
    from fiper.env_factory import SetupError, env_task_name, make_env_from_config

    (tmp_path / "named_factory.py").write_text(
        "import gymnasium as gym\n"
        "def forwarding(**kwargs):\n    return gym.make('InvertedPendulum-v5', **kwargs)\n"
        "def keeping(name=None, obs_mode=None, **kwargs):\n    return gym.make('InvertedPendulum-v5', **kwargs)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(SetupError) as raised:
        make_env_from_config({"factory": "named_factory:forwarding", "name": "my_task"})
    message = str(raised.value)
    assert "unexpected keyword argument 'name'" in message and "called as forwarding(name='my_task')" in message
    assert "def make(name=None, obs_mode=None, **kwargs)" in message
    env = make_env_from_config({"factory": "named_factory:keeping", "name": "my_task"})
    assert env_task_name(env, "my_task") == "my_task"
    env.close()


def test_a_cells_shift_without_a_factory_refused_by_a_forwarding_factory_names_the_shift_factory_to_give(tmp_path, monkeypatch):
    """A sweep cell whose shift has no factory of its own (launch.pipeline's default act.cells name fiper's own tasks'
    shifts) is built by the env factory with shifts=[[shift, severity]]; one forwarding **kwargs to its env's constructor
    passes them on and the env refuses them: launch.stress ends without a traceback, naming the shift, the factory to
    give and the pipeline's act.cells, and records nothing."""
    from fiper.env_factory import SetupError
    from launch.stress import env_builder
    from launch.validate import reported

    (tmp_path / "forwarding_maze.py").write_text(
        "import gymnasium as gym\n"
        "def make(**kwargs):\n    return gym.make('InvertedPendulum-v5', **kwargs)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("FIPER_TRACEBACK", raising=False)
    make_env = env_builder({"factory": "forwarding_maze:make", "name": None, "obs_mode": None}, {}, ["none", "obstacle"])
    make_env("none", 0.0).close()
    with pytest.raises(SetupError) as raised:
        make_env("obstacle", 0.6)
    message = str(raised.value)
    assert "unexpected keyword argument 'shifts'" in message
    assert ("shifts ['obstacle'] have no factory of their own, so they were given to env.factory=forwarding_maze:make as "
            "shifts=[['obstacle', 0.6]], which its env does not take: give one factory per shift") in message
    assert "+factories.obstacle=my_pkg.envs:obstacle" in message and "+rollouts.factories.obstacle=" in message
    assert "act.cells default to fiper's own tasks' shifts: give act.cells of your env's shifts, or act=null" in message
    with pytest.raises(SystemExit, match=r"(?s)^error: .*shifts \['obstacle'\] have no factory of their own"):
        with reported():
            make_env("obstacle", 0.6)


def test_a_float_action_is_stepped_in_the_action_spaces_dtype_for_an_env_that_asserts_contains():
    """gym-xarm's step asserts ``action_space.contains(action)``, which a float64 array fails on a float32 Box: fiper
    computes actions in float64 and gives the env the space's dtype."""
    from fiper.gym_api import in_space_dtype

    class Strict(NestedArm):
        def step(self, action):
            assert self.action_space.contains(action), f"{action!r} invalid"
            return super().step(action)

    episode = run_episode(Strict(), Push(), seed=0)
    assert episode.success and len(episode.data["action"]) == 4
    space = Strict.action_space
    assert in_space_dtype(np.ones(1), space).dtype == np.float32
    assert in_space_dtype(np.ones(1, np.float16), space).dtype == np.float32
    ints = np.ones(1, np.int64)
    assert in_space_dtype(ints, space) is ints and in_space_dtype([1.0], space) == [1.0]
