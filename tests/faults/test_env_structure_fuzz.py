"""Observation and action spaces of envs fiper has not seen, drawn at random (a flat Box or a Dict of vectors,
scalars, integer and bool entries, 2-d arrays, nested dicts, a key named 'action'; float32 or float64 actions of 1 to 4
entries in [-1, 1], in pixels [0, 512] or unbounded):
each is collected by an expert, trained on, and run by the monitored policy, or refused with a ValueError naming
the key or space and the fix. Never a bare KeyError / IndexError / TypeError, never a non-finite action."""

from __future__ import annotations

import os

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fiper.collection import collect
from fiper.control import MonitoredPolicy, run_episode
from fiper.storage import EpisodeStore
from policies import PolicyConfig, TrainConfig, load_policy, train_policy

# FUZZ_EXAMPLES=<n> and FUZZ_RANDOM=1 explore beyond the suite's fixed examples
SETTINGS = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", 8)), deadline=None,
                    derandomize=os.environ.get("FUZZ_RANDOM") is None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
TINY = PolicyConfig(kind="diffusion", denoiser="mlp", horizon=4, n_action_steps=2, embed_dim=8, encoder_hidden=16, mlp_hidden=16,
                    mlp_layers=1, num_inference_steps=2)

leaf = st.one_of(
    st.tuples(st.just("float32"), st.sampled_from([(), (1,), (3,), (2, 2)])),
    st.tuples(st.just("float64"), st.sampled_from([(), (2,)])),
    st.tuples(st.just("int32"), st.sampled_from([(), (2,)])),
    st.tuples(st.just("bool"), st.sampled_from([(1,), (2,)])),
)
names = st.sampled_from(["pos", "goal", "vel", "joint.q", "obj/pose", "x", "action"])
layout = st.one_of(
    leaf,  # a flat Box
    st.dictionaries(names, st.one_of(leaf, st.dictionaries(st.sampled_from(["a", "b"]), leaf, min_size=1, max_size=2)),
                    min_size=1, max_size=3),
)


def _space(spec):
    if isinstance(spec, dict):
        return gym.spaces.Dict({k: _space(v) for k, v in spec.items()})
    dtype, shape = spec
    if dtype == "bool":
        return gym.spaces.MultiBinary(shape)
    if dtype == "int32":
        return gym.spaces.Box(-5, 5, shape, np.int32)
    return gym.spaces.Box(-np.inf, np.inf, shape, np.dtype(dtype))


class Drawn(gym.Env):
    """An env with the drawn observation space: random observations, 8-11 steps, success on even seeds."""

    def __init__(self, spec, action_dim: int, action_dtype: str, bounds: tuple[float, float] = (-1.0, 1.0)):
        self.observation_space = _space(spec)
        self.action_space = gym.spaces.Box(*bounds, (action_dim,), np.dtype(action_dtype))

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.observation_space.seed(int(self.np_random.integers(1 << 30)))
        self.t, self.length, self.good = 0, int(self.np_random.integers(8, 12)), (seed or 0) % 2 == 0
        return self._obs(), {}

    def _obs(self):
        obs = self.observation_space.sample()
        return {k: v for k, v in obs.items()} if isinstance(obs, dict) else obs

    def step(self, action):
        assert np.all(np.isfinite(action)) and self.action_space.contains(np.asarray(action, self.action_space.dtype))
        self.t += 1
        end = self.t >= self.length
        return self._obs(), 0.0, False, end, ({"success": self.good} if end else {})


class RandomExpert:
    def __init__(self, env):
        self.space = env.action_space

    def reset(self, seed=None):
        self.space.seed(seed)

    def act(self, obs, info):
        return self.space.sample()


@SETTINGS
@given(spec=layout, action_dim=st.integers(1, 4), action_dtype=st.sampled_from(["float32", "float64"]),
       bounds=st.sampled_from([(-1.0, 1.0), (0.0, 512.0), (-np.inf, np.inf)]))
def test_a_drawn_env_is_collected_trained_and_run_or_refused_naming_the_key(tmp_path_factory, spec, action_dim, action_dtype, bounds):
    root = tmp_path_factory.mktemp("drawn")
    env = Drawn(spec, action_dim, action_dtype, bounds)
    try:
        store = EpisodeStore.create(root / "demos.zarr")
        collect(env, RandomExpert(env), store, 4, seed=0, max_attempts=8, progress=False)
        train_policy(root / "demos.zarr", TrainConfig(policy=TINY, steps=2, batch_size=8, device="cpu", progress=False, cpu_threads=1,
                                                      val_every=1000, checkpoint_every=10**6), root / "policy")
    except ValueError as err:
        text = str(err)
        assert len(text) > 60 and any(word in text for word in ("observation", "key", "space", "dtype")), (spec, text)
        return
    policy = load_policy(root / "policy")
    result = run_episode(env, MonitoredPolicy(policy, None, num_samples=2), seed=1)
    assert np.isfinite(result.steps["action"]).all() and len(result.steps["action"]) >= 8, spec
    assert result.decisions and all(d.verdict is None or not d.verdict.failsafe for d in result.decisions), spec


@pytest.mark.parametrize("spec", [{"pos": ("float32", (3,)), "flag": ("bool", (1,)), "n": ("int32", ())},
                                  {"arm": {"q": ("float64", (2,)), "dq": ("float32", ())}, "m": ("float32", (2, 2))}])
def test_mixed_observations_train_and_run(tmp_path, spec):
    """Named layouts of the fuzz that must work: bools, ints, scalars, a 2-d entry and a nested dict."""
    test_a_drawn_env_is_collected_trained_and_run_or_refused_naming_the_key.hypothesis.inner_test(tmp_path_factory=_Factory(tmp_path),
                                                                                                spec=spec, action_dim=2,
                                                                                                action_dtype="float32", bounds=(0.0, 512.0))


class _Factory:
    def __init__(self, path):
        self.path, self.n = path, 0

    def mktemp(self, name):
        self.n += 1
        out = self.path / f"{name}{self.n}"
        out.mkdir()
        return out
