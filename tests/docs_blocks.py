"""What each doc block needs to run (test_docs_examples.py): the helpers its prelude calls, the names
the surrounding prose introduces, the checks of what the prose promises, and the reasoned skips."""

from __future__ import annotations

from dataclasses import dataclass, field

# Helpers the preludes call as H.<name> (the blocks themselves never see H).
HELPERS = '''
import numpy as np
import torch

PICK_PLACE = dict(embedding_dim=64, num_samples=8, horizon=16, action_dim=4, n_action_steps=4)  # the shipped policy, B = 8
TINY_SCORES = {"rnd_oe": {"score": "rnd_oe", "train": {"max_epochs": 3}}, "ace": {"score": "ace"}}


def tiny_policy(obs_shapes, action_dim, **overrides):
    """An untrained diffusion-MLP policy: its shapes and API are all a doc example needs."""
    from policies import PolicyConfig, build_policy
    torch.manual_seed(0)
    cfg = dict(kind="diffusion", denoiser="mlp", horizon=8, n_action_steps=4, embed_dim=16, encoder_hidden=32,
               mlp_hidden=32, mlp_layers=1, num_inference_steps=4)
    cfg.update(overrides)
    return build_policy(PolicyConfig(**cfg), {k: tuple(v) for k, v in obs_shapes.items()}, action_dim)


def shipped_policy():
    """The pick-and-place checkpoint the repository ships (copied into the working directory)."""
    from policies import load_policy
    return load_policy("launch/checkpoints/pick_place_diffusion_mlp", device="cpu")


def policy_decisions(policy, num_samples, episodes, per_episode, seed):
    from fiper.scores import ScoreFitData
    g = torch.Generator().manual_seed(seed)
    n = episodes * per_episode
    obs = {k: torch.randn(n, policy.n_obs_steps, *shape, generator=g) for k, shape in policy.obs_shapes.items()}
    z = policy.encode(obs)
    samples = policy.sample(z, num_samples, generator=g)
    return ScoreFitData(z.numpy(), samples.numpy(), np.arange(1, episodes + 1) * per_episode, seed=seed)


def tiny_monitor(policy, directory="runs/monitor", num_samples=8):
    """A fitted and calibrated RND-OE + ACE monitor for ``policy`` (random observations), saved to ``directory``."""
    from fiper.monitor import PolicyIdentity, save_monitor
    from fiper.monitor.fitting import fit_monitor
    fit, cal = policy_decisions(policy, num_samples, 10, 6, 0), policy_decisions(policy, num_samples, 10, 6, 1)
    monitor = fit_monitor(fit, PolicyIdentity.of(policy, num_samples), scores=TINY_SCORES, windows={"rnd_oe": 2, "ace": 2})
    monitor.calibrate(monitor.score_offline(cal.embeddings, cal.samples, cal.decision_ends), cal.decision_ends, delta=0.2)
    save_monitor(monitor, directory)
    return monitor


def rollout_store(path, seed, task=None, **sizes):
    """A labelled synthetic rollout store with recorded decisions (benchmarks/synthetic_stores.py)."""
    from benchmarks.synthetic_stores import SyntheticTask, write_synthetic_store
    return write_synthetic_store(path, SyntheticTask(**(task or {})), seed=seed, **sizes)
'''


@dataclass(frozen=True)
class Block:
    """How one doc block runs. ``prelude`` runs in its own namespace (with ``H``, the helpers);
    only the names in ``provides`` reach the block's namespace."""

    prelude: str = ""
    provides: tuple[str, ...] = ()
    after: tuple[tuple[str, str], ...] = ()  # blocks whose code runs first in the same namespace
    files: dict[str, tuple[str, str] | str] = field(default_factory=dict)  # path -> block key (its code) or text
    replace: tuple[tuple[str, str, str], ...] = ()  # (old, new, reason)
    check: str = ""  # runs after the block, in its namespace
    copy: tuple[str, ...] = ()  # repository paths copied into the working directory (the doc names them relative to the root)
    path: bool = False  # put the working directory on sys.path (for a package the block imports)
    skip: str = ""


CHECKPOINTS = "launch/checkpoints"  # the shipped pick-and-place policy
ADAPTER = ("docs/adapters.md", "import torch")
POUR = ("docs/interventions.md", "# rewards/pour.py (written by you or by a VLM prompted with the keypoints)")

BLOCKS: dict[tuple[str, str], Block] = {
    ("README.md", "from fiper.control import MonitoredPolicy"): Block(
        prelude="""
            import envs
            policy = H.shipped_policy()
            H.tiny_monitor(policy, "runs/monitor")
            obs, _ = envs.make_env("pick_place").reset(seed=0)
        """,
        provides=("policy", "obs"), copy=(CHECKPOINTS,),
        check="""
            assert action.shape == (4,)
            assert {"alarm", "reason", "ratios", "intervention", "timing_ms"} <= set(agent.last_info), agent.last_info
        """),
    ADAPTER: Block(check="assert LatentDecoderAdapter.__init__"),
    ("docs/adapters.md", "import fiper"): Block(
        after=(ADAPTER,),
        check="assert isinstance(adapter, fiper.GenerativePolicy) and chunks.shape == (3, 32, 16, 2)"),
    ("docs/adapters.md", "# the contract checks, on your adapter"): Block(
        after=(ADAPTER, ("docs/adapters.md", "import fiper")),
        check="assert chunks.shape == (3, 16, 16, 2) and len(policy_fingerprint(adapter)) == 64"),
    ("docs/adapters.md", "from fiper.adapters import DiffusersPolicy, make_scheduler"): Block(
        check="""
            from fiper import GenerativePolicy
            assert isinstance(policy, GenerativePolicy) and z.shape == (3, 32) and chunks.shape == (3, 32, 15, 2)
            assert torch.isfinite(chunks).all() and torch.allclose(policy.action_scale, torch.full((2,), 256.0))
        """),
    ("docs/adapters.md", "# my_pkg/lerobot_policy.py: policy_factory=my_pkg.lerobot_policy:load"): Block(
        skip="needs lerobot and a pretrained policy; the adapter it builds is tested in tests/adapters"),
    ("docs/adapters.md", "# once, on a machine you trust with the file (needs diffusion_policy and dill installed)"): Block(
        skip="needs diffusion_policy, dill and a workspace checkpoint"),
    ("docs/adapters.md", "# my_pkg/dp_policy.py: policy_factory=my_pkg.dp_policy:load"): Block(
        skip="needs diffusion_policy and a converted checkpoint; the adapter it builds is tested in tests/adapters"),
    ("docs/envs.md", "import gymnasium as gym"): Block(
        skip="needs metaworld, which pins mujoco 3.3 (fiper installs mujoco 4); walked by hand in an environment of its own"),
    ("docs/monitor.md", "from fiper.monitor import PolicyIdentity, save_monitor, load_monitor"): Block(
        prelude="""
            import torch
            sizes = dict(n_success_ood=2, n_fail_id=2, n_fail_ood=2, task=H.PICK_PLACE)
            H.rollout_store("runs/id_fit.zarr", 0, n_success_id=10, **sizes)  # as launch.stress records them (README)
            H.rollout_store("runs/id_cal.zarr", 1, n_success_id=12, **sizes)
            policy = H.shipped_policy()
            z = policy.encode({"agent_pos": torch.zeros(1, 2, 4), "object": torch.zeros(1, 2, 7),
                                "obstacle": torch.zeros(1, 2, 4)})
            chunks = policy.sample(z, 8)
        """,
        provides=("policy", "z", "chunks"), copy=(CHECKPOINTS,),
        check="assert monitor.calibrated and set(verdict.ratios) == {'rnd_oe', 'ace'} and isinstance(verdict.alarm, bool)"),
    ("docs/architecture.md", "# fiper/scores/speed.py"): Block(
        check="""
from fiper.monitor.spec import MonitorSpec
from fiper.monitor import FailureMonitor, PolicyIdentity
from fiper.scores import ScoreFitData, register_score
register_score(ChunkSpeed)
g = np.random.default_rng(0)
data = ScoreFitData(g.normal(size=(30, 4)), g.normal(size=(30, 8, 6, 2)), [10, 20, 30])
m = FailureMonitor.from_spec(MonitorSpec.of({"scores": {"speed": {"score": "chunk_speed"}, "ace": {}}, "rule": "or"}),
                             data, PolicyIdentity(4, 8, 6, 2))
raw = m.score_offline(data.embeddings, data.samples, data.decision_ends)
m.calibrate(raw, data.decision_ends, delta=0.4)
assert raw["speed"].shape == (30,) and (raw["speed"] > 0).all() and isinstance(m.step(data.embeddings[0], data.samples[0]).alarm, bool)
""", prelude="import numpy as np", provides=("np",)),
    ("docs/monitor.md", "from fiper.monitor import FailureMonitor"): Block(
        prelude="""
            from fiper.monitor import PolicyIdentity
            data = H.policy_decisions(H.tiny_policy({"state": (3,)}, 2), 8, 6, 5, 0)
            identity = PolicyIdentity(int(data.embeddings.shape[1]), 8, *data.samples.shape[2:])
        """,
        provides=("data", "identity"),
        replace=(('"rnd_oe": {}', '"rnd_oe": {"train": {"max_epochs": 2}}', "a tiny fit keeps the suite fast"),),
        check="assert monitor.scores['ace'].fitted and (monitor.threshold_type, monitor.joint, monitor.rule) == ('band', True, 'or')"),
    ("docs/control_loop.md", "from fiper.control import MonitoredPolicy, RolloutRecorder, run_episode"): Block(
        prelude="""
            import envs
            policy = H.tiny_policy({"agent_pos": (2,), "object": (4,)}, 2)
            H.tiny_monitor(policy, "runs/monitor")
            env = envs.make_env("push_t", max_episode_steps=40)
            obs, _ = env.reset(seed=0)
        """,
        provides=("policy", "env", "obs"),
        check="""
            from fiper.storage import EpisodeStore
            assert {"fallback_active", "env_step"} <= set(agent.last_info)  # every step; at a decision also:
            info = next(i for i in result.infos if i["decision"])
            assert {"alarm", "reason", "ratios", "intervention", "timing_ms", "overrun"} <= set(info)
            assert {"encode", "sample", "monitor", "intervention", "total"} <= set(info["timing_ms"])
            from fiper.monitor.identity import policy_fingerprint
            store = EpisodeStore.open("runs/rollouts.zarr")
            assert store.n_episodes == 1 and {"embedding", "samples", "alarm", "intervention"} <= set(store.decision_keys)
            assert store.attrs["policy_fingerprint"] == policy_fingerprint(policy)
        """),
    ("docs/control_loop.md", "# on a robot: record rollouts of the policy alone, with its decisions"): Block(
        prelude="""
            import envs
            policy = H.tiny_policy({"agent_pos": (2,), "object": (4,)}, 2)
            env = envs.make_env("push_t", max_episode_steps=12)  # stands in for the robot
            state = {}

            def start_episode():
                state["obs"], _ = env.reset(seed=len(state))
                state["done"], state["info"] = False, {}

            def episode_over():
                return state["done"]

            def get_observation():
                return state["obs"]

            def send_action(action):
                state["obs"], _, terminated, truncated, state["info"] = env.step(action)
                state["done"] = terminated or truncated

            def episode_succeeded():
                return True  # the operator's verdict; every stand-in episode counts, so the fit below has data
        """,
        provides=("policy", "start_episode", "episode_over", "get_observation", "send_action", "episode_succeeded"),
        check="""
            from fiper.monitor.decision_data import load_decisions, successful_in_distribution
            from fiper.monitor.identity import policy_fingerprint
            from fiper.storage import EpisodeStore
            for path in ("runs/id_fit.zarr", "runs/id_cal.zarr"):
                store = EpisodeStore.open(path)
                assert store.n_episodes == 3 and {"embedding", "samples", "env_step"} <= set(store.decision_keys)
                data, identity = load_decisions(store, episodes=successful_in_distribution(store))
                assert identity.fingerprint == policy_fingerprint(policy) and len(data.decision_ends) == 3
                assert identity.n_action_steps == policy.n_action_steps
        """),
    ("docs/control_loop.md", "# step 0 on pick_place driven by hand: the scripted expert teleoperates, the loop writes the demonstrations"): Block(
        replace=(("range(200)", "range(2)", "two demonstrations show the loop; the recipe's 200 take 5 s"),),
        check="""
            store = EpisodeStore.open("runs/demos.zarr")
            assert store.n_episodes == 2 and bool(store.meta("success").all())
            assert set(store.data_keys) == {"agent_pos", "object", "obstacle", "action"}
            assert store.episode_lengths.min() > 20 and store.data_array("action").shape[1] == 4
        """),
    ("docs/control_loop.md", "from fiper.control import DeadlineMonitor, DeadlinePolicy, MonitoredPolicy"): Block(
        prelude="""
            from fiper.interventions import FallbackContext, GradedResponse, HoldPosition
            from fiper.monitor import load_monitor
            policy = H.tiny_policy({"agent_pos": (2,), "object": (4,)}, 2)
            H.tiny_monitor(policy, "runs/monitor")
            monitor = load_monitor("runs/monitor", policy=policy)
            response = GradedResponse(fallback=HoldPosition())
            context = FallbackContext(action_dim=2, position_dims=[0, 1])
        """,
        provides=("policy", "monitor", "response", "context"),
        check="""
            import numpy as np
            agent.reset(seed=0)
            action = agent.act({"agent_pos": np.zeros(2, np.float32), "object": np.zeros(4, np.float32)})
            assert np.isfinite(action).all() and agent.last_info["decision"] and agent.policy.deadline_ms == 200
            assert agent.monitor.deadline_ms == 50 and not agent.last_info["failsafe"]
        """),
    ("docs/control_loop.md", "import envs"): Block(
        prelude="""
            from fiper.control import MonitoredPolicy
            from fiper.monitor import load_monitor
            policy = H.tiny_policy({"agent_pos": (2,), "object": (4,)}, 2)
            H.tiny_monitor(policy, "runs/monitor")
            agent = MonitoredPolicy(policy, load_monitor("runs/monitor", policy=policy))
        """,
        provides=("agent",),
        replace=(("render_size=256)", "render_size=64, max_episode_steps=12)", "a short, small video keeps the suite fast"),),
        check="""
            import imageio.v3 as iio
            assert len(frames) == len(result.steps["action"]) + 1
            assert iio.imread("alarm.mp4").shape[0] == len(frames)
        """),
    ("docs/interventions.md", "from fiper.interventions import FallbackContext, GradedResponse, KeepOut, Steering, make_fallback"): Block(
        prelude="""
            import numpy as np
            import torch
            from fiper.monitor import MonitorVerdict
            policy = H.tiny_policy({"agent_pos": (7,)}, 7)
            obs = {"agent_pos": np.zeros(7, dtype=np.float32)}
            z = policy.encode({"agent_pos": torch.zeros(1, policy.n_obs_steps, 7)})
            verdict = MonitorVerdict(decision=0, ratios={"rnd_oe": 1.5, "ace": 1.2}, combined_ratio=1.2, alarm=True)
            k = 0  # the step of the chunk being executed
        """,
        provides=("policy", "obs", "z", "verdict", "k"),
        check="assert label == 'steer' and action.shape == (7,) and response.excluded_scores == ('ace',)"),
    ("docs/interventions.md", "class Fallback(Protocol):"): Block(
        prelude="""
            from collections.abc import Mapping
            from typing import Any, Protocol
            import numpy as np
            from fiper.interventions import FallbackContext
        """,
        provides=("Mapping", "Any", "Protocol", "np", "FallbackContext"),
        check="""
            import inspect
            from fiper.interventions import Fallback as Declared
            for method in ("start", "act"):  # the excerpt states the declared protocol
                assert inspect.signature(getattr(Fallback, method)).parameters.keys() == inspect.signature(getattr(Declared, method)).parameters.keys()
        """),
    ("docs/interventions.md", "reward(trajectory: Tensor) -> Tensor      # (batch, steps, 3) in env units -> (batch,), higher is better"): Block(
        skip="a call signature written as code, not a statement"),
    POUR: Block(check="""
            t = torch.zeros(4, 5, 3)
            assert above_cup(t).shape == (4,) and make_above([0.4, 0.0, 0.3])(t).shape == (4,)
        """),
    ("docs/interventions.md", "from fiper.interventions import load_reward"): Block(
        files={"rewards/pour.py": POUR, "mypkg/__init__.py": "", "mypkg/rewards.py": POUR}, path=True,
        check="""
            import torch
            assert all(r(torch.zeros(4, 5, 3)).shape == (4,) for r in (r1, r2, r3))
        """),
    ("docs/scores.md", "from fiper.scores import ScoreFitData, make_score, score_from_state"): Block(
        prelude="""
            import numpy as np
            rng = np.random.default_rng(0)
            embeddings = rng.normal(size=(60, 8)).astype(np.float32)       # N = 60 decisions, D = 8
            samples = rng.normal(size=(60, 16, 4, 2)).astype(np.float32)   # B = 16, H = 4, A = 2
            decision_ends = np.array([20, 40, 60])
            z_t, chunks_t, Z, S = embeddings[0], samples[0], embeddings, samples
        """,
        provides=("embeddings", "samples", "decision_ends", "z_t", "chunks_t", "Z", "S"),
        replace=(('device="cuda"', 'device="cpu"', "the test machine need not have a GPU"),),
        check="assert s.shape == (60,) and score.step(z_t, chunks_t) == s_t"),
    ("docs/evaluation.md", "from fiper.evaluation import EvaluationConfig, evaluate_rollouts, summary_table, write_outputs"): Block(
        prelude="""
            sizes = dict(n_success_id=48, n_success_ood=4, n_fail_id=6, n_fail_ood=6)  # 96 ID successes: the band at 0.05 needs 95
            for seed, run in enumerate(("a", "b")):
                H.rollout_store(f"runs/{run}/rollouts.zarr", seed, **sizes)
        """,
        replace=(("EvaluationConfig(deltas=(0.05, 0.1))", "EvaluationConfig(deltas=(0.05, 0.1), progress=False)",
                  "no progress bars in the test log"),),
        check="""
            import os
            assert {"metrics.json", "report.md", "config.json"} <= set(os.listdir("results"))
        """),
    ("docs/interventions.md", "from omegaconf import OmegaConf"): Block(
        copy=("launch/conf",),
        check="""
            from fiper.interventions import GradedResponse
            assert isinstance(response, GradedResponse) and response.steering is not None and response.fallback is not None
        """),
    ("docs/envs.md", "import envs"): Block(check="assert info['shift'] == 'obstacle' and obs['agent_pos'].shape == (2,)"),
    ("docs/envs.md", "class Expert(Protocol):"): Block(
        prelude="""
            from typing import Protocol
            import numpy as np
        """,
        provides=("Protocol", "np"),
        check="""
            import inspect
            from envs import Expert as Declared
            for method in ("reset", "act"):  # the excerpt states the declared protocol
                assert inspect.signature(getattr(Expert, method)).parameters.keys() == inspect.signature(getattr(Declared, method)).parameters.keys()
        """),
    ("docs/envs.md", "from fiper.collection import collect, run_episode"): Block(
        replace=(("n_episodes=100", "n_episodes=2", "100 push-T episodes take a minute"),),
        check="assert summary.saved == 2 and store.n_episodes == 2"),
    ("docs/policies.md", "import torch"): Block(
        copy=(CHECKPOINTS,), check="assert z.shape == (1, 64) and chunks.shape == (1, 256, 16, 4)"),
}
