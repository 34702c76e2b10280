"""MonitoredPolicy in a real MuJoCo task: recording, injected alarms, fallbacks, fail-safe."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import envs
from calibration import Threshold
from fiper.collection import collect
from fiper.control import MonitoredPolicy, RolloutRecorder, run_episode
from fiper.interventions import FallbackContext, GradedResponse, HoldPosition, Retreat
from fiper.monitor import FailureMonitor, PolicyIdentity
from fiper.monitor.fitting import fit_monitor
from fiper.monitor.decision_data import load_decisions
from fiper.storage import EpisodeStore
from policies import PolicyConfig, TrainConfig, train_policy

B, MAX_STEPS = 8, 40
SCORES = {"rnd_oe": {"score": "rnd_oe", "target_widths": [16], "predictor_widths": [32, 32], "out_dim": 8,
                     "train": {"lr": 3e-3, "max_epochs": 3}},
          "ace": {"score": "ace", "dims": [0, 1]}}


def make_env(terminate: bool = True):
    return envs.make_env("push_t", max_episode_steps=MAX_STEPS, terminate_on_success=terminate, terminate_on_failure=terminate)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A tiny push-T policy trained briefly on expert demos, and a monitor fitted on its replays."""
    root = tmp_path_factory.mktemp("control")
    env = envs.make_env("push_t")
    store = EpisodeStore.create(root / "demos.zarr")
    collect(env, envs.make_expert(env), store, 3, seed=0, progress=False)
    cfg = PolicyConfig(kind="diffusion", denoiser="mlp", horizon=8, n_action_steps=4, embed_dim=16, encoder_hidden=32,
                       mlp_hidden=64, mlp_layers=2, num_inference_steps=4)
    train_policy(root / "demos.zarr", TrainConfig(policy=cfg, steps=40, batch_size=64, device="cpu", progress=False, cpu_threads=1,
                                                  val_every=1000, checkpoint_every=10**6), root / "policy")
    from policies import load_policy

    policy = load_policy(root / "policy")
    data, identity = load_decisions(EpisodeStore.open(root / "demos.zarr"), policy=policy, num_samples=B)
    monitor = fit_monitor(data, identity, scores=SCORES, windows={"rnd_oe": 2, "ace": 2})
    monitor.calibrate(monitor.score_offline(data.embeddings, data.samples, data.decision_ends), data.decision_ends, delta=0.3)
    return root, policy, monitor


def alarm_from(monitor: FailureMonitor, decision: int) -> FailureMonitor:
    """The same scores with thresholds that never alarm before ``decision`` and always from it on."""
    curve = np.r_[np.full(decision, 1e12), -1e12]
    th = {n: Threshold("time_varying", 0.1, curve, 10, False) for n in monitor.names}
    return FailureMonitor(monitor.scores, monitor.identity, windows=monitor.windows, rule=monitor.rule, thresholds=th)


def context(policy) -> FallbackContext:
    return FallbackContext(action_dim=policy.action_dim, position_dims=[0, 1], agent_pos_key="agent_pos")


def test_monitored_rollout_records_every_contract_key(setup, tmp_path):
    root, policy, monitor = setup
    agent = MonitoredPolicy(policy, monitor, num_samples=B)
    recorder = RolloutRecorder(tmp_path / "rollouts.zarr", score_names=monitor.names, attrs={"task": "push_t"})
    env = make_env()
    for seed in (1, 2):
        result = run_episode(env, agent, seed=seed, labels={"shift": "none", "severity": 0.0})
        recorder.write(result.steps, result.decisions, result.labels)
    store = EpisodeStore.open(tmp_path / "rollouts.zarr")
    assert store.n_episodes == 2
    assert {"agent_pos", "object", "action"} <= set(store.data_keys)
    need = {"embedding", "samples", "env_step", "alarm", "score/rnd_oe", "score/ace", "ratio/ace", "intervention", "timing/total_ms"}
    assert need <= set(store.decision_keys)
    assert {"success", "failure_step", "shift", "severity", "seed"} <= set(store.meta_keys)
    dec = store.episode_decisions(0)
    n = len(dec["env_step"])
    assert dec["samples"].shape == (n, B, policy.horizon, policy.action_dim)
    np.testing.assert_array_equal(dec["env_step"], np.arange(n) * policy.n_action_steps)
    assert store.episode_lengths[0] == len(result.infos) or store.episode_lengths[1] == len(result.infos)
    assert np.all(np.isfinite(dec["score/rnd_oe"])) and np.all(dec["timing/total_ms"] > 0)
    # live scores equal the offline re-scoring of the recorded batches (float16 samples: ACE exact up to binning)
    offline = monitor.score_offline(dec["embedding"], dec["samples"].astype(np.float32), [n])
    np.testing.assert_allclose(offline["rnd_oe"], dec["score/rnd_oe"], rtol=1e-5)
    ace_gap = np.abs(offline["ace"] - dec["score/ace"])
    assert ace_gap.mean() < 0.05 and ace_gap.max() < 0.5, ace_gap  # bits; ACE spans 0..log2 B
    assert store.meta("seed").tolist() == [1, 2] and store.meta("shift").tolist() == ["none", "none"]


def test_hold_fallback_on_injected_alarm_keeps_position(setup):
    _, policy, monitor = setup
    ctx = context(policy)
    agent = MonitoredPolicy(policy, alarm_from(monitor, 2), num_samples=B, context=ctx,
                            response=GradedResponse(fallback=HoldPosition()))
    env = make_env(terminate=False)
    obs, _ = env.reset(seed=3)
    agent.reset(seed=3)
    positions, infos = [], []
    for _ in range(30):
        obs, *_ = env.step(agent.act(obs))
        infos.append(agent.last_info)
        positions.append(obs["agent_pos"][:2].copy())
    start = next(i for i, info in enumerate(infos) if info["fallback_active"])
    assert start == 2 * policy.n_action_steps  # third decision: alarm -> fallback
    assert infos[start]["intervention"] == "fallback:hold" and infos[start]["alarm"]
    held = np.array(positions[start + 2:])
    assert np.max(np.linalg.norm(held - held[0], axis=1)) < 2e-3  # stays put (m)
    assert not agent.queue and all(i["fallback_active"] for i in infos[start:])


def test_retreat_fallback_moves_back_along_the_path(setup):
    _, policy, monitor = setup
    ctx = context(policy)
    agent = MonitoredPolicy(policy, alarm_from(monitor, 4), num_samples=B, context=ctx,
                            response=GradedResponse(fallback=Retreat(steps=12)))
    env = make_env(terminate=False)
    obs, _ = env.reset(seed=4)
    agent.reset(seed=4)
    executed = []
    while True:
        action = agent.act(obs)
        if agent.fallback_active:
            break
        executed.append(action)
        obs, *_ = env.step(action)
    executed = np.array(executed)
    retreat, positions = [action], []
    obs, *_ = env.step(action)
    for _ in range(14):
        retreat.append(agent.act(obs))
        obs, *_ = env.step(retreat[-1])
        positions.append(obs["agent_pos"].copy())
    retreat = np.array(retreat)
    # after the first step (the measured position) it replays earlier targets, newest to oldest
    # (each matched at the newest recorded index not after the previous match: a policy may repeat a clipped target)
    idx, last = [], len(executed) - 1
    for a in retreat[1:12]:
        hits = np.flatnonzero(np.isclose(executed[: last + 1], a).all(1))
        if len(hits):
            idx.append(last := int(hits[-1]))
    assert len(idx) >= 10 and np.all(np.diff(idx) <= 0) and idx[0] - idx[-1] >= 8
    goal = retreat[-1]
    gaps = np.linalg.norm(np.array(positions) - goal, axis=1)
    assert gaps[-1] < 0.5 * gaps[0] + 1e-3  # the pusher travels back toward the oldest target


class Boom:
    """A score that breaks at its third decision (as a CUDA error or a NaN bug would)."""

    name, needs, embedding_dim, sample_shape, fitted = "boom", frozenset({"embedding"}), None, None, True

    def __init__(self):
        self.calls = 0

    def reset(self):
        self.calls = 0

    def step(self, embedding, samples):
        self.calls += 1
        if self.calls == 3:
            raise RuntimeError("simulated score failure")
        return 0.0

    step_checked = step

    def to(self, device):
        return self


def test_score_exception_triggers_fallback_and_is_recorded(setup, tmp_path):
    _, policy, _ = setup
    ident = PolicyIdentity.of(policy, B)
    monitor = FailureMonitor({"boom": Boom()}, ident, windows={"boom": 1}, rule="single",
                             thresholds={"boom": Threshold("constant", 0.1, [1.0], 10, True)})
    agent = MonitoredPolicy(policy, monitor, num_samples=B, context=context(policy), response=GradedResponse(fallback=HoldPosition()))
    result = run_episode(make_env(terminate=False), agent, seed=5)
    recorder = RolloutRecorder(tmp_path / "r.zarr", score_names=["boom"])
    recorder.write(result.steps, result.decisions, result.labels)
    dec = EpisodeStore.open(tmp_path / "r.zarr").episode_decisions(0)
    assert dec["failsafe"].tolist() == [False, False, True]
    assert "simulated score failure" in dec["reason"][2] and dec["intervention"][2] == "fallback:hold"
    assert len(result.steps["action"]) == MAX_STEPS  # the loop went on under the fallback, no crash
    with torch.no_grad():
        assert result.infos[-1]["fallback_active"]


def test_a_failing_reward_program_hands_over_to_the_fallback(setup):
    """A reward program that returns NaN at run time (it passed the probe on the first bind): the fallback takes
    over at that decision, with the error as the recorded reason; without a fallback the error surfaces instead of
    executing blind."""
    from fiper.interventions import Steering

    _, policy, monitor = setup

    class Broken:  # finite on its first call (the probe when the steering is first bound), NaN while steering
        calls = 0

        def __call__(self, traj):
            self.calls += 1
            return traj.sum((1, 2)) * (1.0 if self.calls == 1 else float("nan"))

    agent = MonitoredPolicy(policy, alarm_from(monitor, 1), response=GradedResponse(
        steering=Steering(Broken(), num_particles=B), fallback=HoldPosition()), context=context(policy), num_samples=B)
    result = run_episode(make_env(terminate=False), agent, seed=0)
    labels = [d.intervention for d in result.decisions]
    assert labels[0] == "none" and labels[1] == "fallback:hold"
    reason = result.decisions[1].verdict.reason
    assert "above threshold" in reason and "steering raised ValueError" in reason and "non-finite" in reason
    agent = MonitoredPolicy(policy, alarm_from(monitor, 1), response=GradedResponse(steering=Steering(Broken(), num_particles=B)),
                            num_samples=B)
    with pytest.raises(ValueError, match="non-finite"):
        run_episode(make_env(terminate=False), agent, seed=0)


def test_stress_sweep_with_hold_intervention_holds_after_the_alarm(setup, tmp_path):
    """launch.stress response=hold: the recorded store shows the fallback from the first alarm on."""
    from hydra import compose, initialize_config_dir

    from fiper.monitor import save_monitor
    from launch import stress

    root, policy, monitor = setup
    save_monitor(alarm_from(monitor, 2), tmp_path / "monitor")
    overrides = [f"policy_dir={root / 'policy'}", f"monitor_dir={tmp_path / 'monitor'}", f"out={tmp_path / 'r.zarr'}",
                 "response=hold", "cells=[[none,[0.0]]]", "seeds.count=1", "progress=false",
                 f"+env.kwargs.max_episode_steps={MAX_STEPS}", "+env.kwargs.terminate_on_failure=false"]
    with initialize_config_dir(config_dir=str(stress.__file__).rsplit("/", 1)[0] + "/conf", version_base=None):
        cfg = compose(config_name="stress", overrides=overrides)
    stress.run(cfg)
    store = EpisodeStore.open(tmp_path / "r.zarr")
    dec = store.episode_decisions(0)
    acted = dec["intervention"] != "none"
    assert store.attrs["response_type"] == "GradedResponse"
    assert store.attrs["control_period_s"] == pytest.approx(make_env().unwrapped.dt) == pytest.approx(0.1)  # from the env
    assert not acted[:2].any() and acted[2:].all() and set(dec["intervention"][acted]) == {"fallback:hold"}
    start = int(dec["env_step"][2])
    held = store.episode(0)["action"][start:]
    assert len(held) > 1 and np.ptp(held, axis=0).max() == 0.0  # one latched target, every step after the alarm
    assert int(store.meta("first_intervention_step")[0]) == start


def test_stress_refuses_a_configured_control_period_the_env_contradicts(setup, tmp_path):
    """+env.control_period_s= that disagrees with the env's dt is refused before anything is recorded."""
    from hydra import compose, initialize_config_dir

    from launch import stress

    root, _, _ = setup
    overrides = [f"policy_dir={root / 'policy'}", f"out={tmp_path / 'r.zarr'}", "cells=[[none,[0.0]]]", "seeds.count=1",
                 "progress=false", "+env.control_period_s=0.0125"]
    with initialize_config_dir(config_dir=str(stress.__file__).rsplit("/", 1)[0] + "/conf", version_base=None):
        cfg = compose(config_name="stress", overrides=overrides)
    with pytest.raises(ValueError, match=r"env.control_period_s=0.0125 s but push_t declares PushTEnv.dt = 0.1 s"):
        stress.run(cfg)
    assert not (tmp_path / "r.zarr").exists()


def test_stress_sweep_steers_around_each_episodes_obstacle(setup, tmp_path):
    """launch.stress response=steer_keep_out: the keep-out reward is bound to every episode's own
    obstacle (an unbound one raises), steering runs for max_steer_decisions, then the hold latches."""
    from hydra import compose, initialize_config_dir

    from fiper.monitor import save_monitor
    from launch import stress

    root, policy, monitor = setup
    save_monitor(alarm_from(monitor, 2), tmp_path / "monitor")
    overrides = [f"policy_dir={root / 'policy'}", f"monitor_dir={tmp_path / 'monitor'}", f"out={tmp_path / 'r.zarr'}",
                 "response=steer_keep_out", "response.steering.num_particles=8", "cells=[[obstacle,[1.0]]]",
                 "seeds.count=2", "progress=false", f"+env.kwargs.max_episode_steps={MAX_STEPS}",
                 "+env.kwargs.terminate_on_failure=false"]
    with initialize_config_dir(config_dir=str(stress.__file__).rsplit("/", 1)[0] + "/conf", version_base=None):
        cfg = compose(config_name="stress", overrides=overrides)
    stress.run(cfg)
    store = EpisodeStore.open(tmp_path / "r.zarr")
    for ep in range(2):
        labels = list(store.episode_decisions(ep)["intervention"])
        assert labels[:2] == ["none", "none"] and labels[2:5] == ["steer"] * 3
        assert set(labels[5:]) == {"fallback:hold"}


def test_stress_context_comes_from_the_task_and_intervention_needs_a_monitor(setup):
    from omegaconf import OmegaConf

    from launch.stress import action_context, build_response

    pick = envs.make_env("pick_place")
    ctx = action_context({"position_dims": None, "gripper_dims": None, "action_mode": "position"}, 4, pick)
    assert list(ctx.position_dims) == [0, 1, 2] and list(ctx.gripper_dims) == [3]
    ctx = action_context({"position_dims": [0, 1], "gripper_dims": None}, 2, object())  # given explicitly: no env needed
    assert list(ctx.position_dims) == [0, 1]
    with pytest.raises(ValueError, match="context.position_dims"):
        action_context({}, 2, object())
    cfg = OmegaConf.create({"response": {"fallback": {"name": "hold"}}})
    with pytest.raises(ValueError, match="monitor_dir"):
        build_response(cfg, None, setup[1], make_env)


def test_effort_actions_refuse_the_built_in_fallbacks_and_take_a_controller(setup):
    """Forces or torques declared as such (action_mode='effort'): a hold, retreat or return_retry would repeat or zero an
    effort, so each is refused before any episode, in the library and the launchers; a controller of the user's own runs."""
    from fiper.interventions import ReturnAndRetry, SafeController
    from launch.stress import action_context

    _, policy, monitor = setup
    effort = FallbackContext(action_dim=policy.action_dim, position_dims=[0, 1], action_mode="effort")
    for response in (GradedResponse(fallback=HoldPosition()), GradedResponse(fallback=Retreat())):
        with pytest.raises(ValueError, match=r"forces or torques \(action_mode='effort'\).*controller of your own"):
            MonitoredPolicy(policy, monitor, num_samples=B, context=effort, response=response)
    with pytest.raises(ValueError, match=r"return_retry commands positions or velocities, but the action entries are forces"):
        ReturnAndRetry(target="path").bind_context(effort)
    brake = GradedResponse(fallback=SafeController(lambda obs: np.zeros(policy.action_dim)))
    agent = MonitoredPolicy(policy, monitor, num_samples=B, context=effort, response=brake)
    assert agent.context.action_mode == "effort"
    with pytest.raises(ValueError, match=r"a fallback \(hold, stop, retreat, return_retry, ...\) commands positions"):
        action_context({"action_mode": "effort"}, 2, object())
    ctx = action_context({"action_mode": "effort"}, 2, object(), positions=False)  # a controller: every entry an effort
    assert ctx.action_mode == "effort" and list(ctx.position_dims) == [0, 1]


def test_an_env_without_a_time_limit_is_an_error_naming_the_fix_not_a_rollout_that_never_ends(setup, monkeypatch):
    """An episode the policy never finishes, in an env that never truncates, stops at the step limit with the
    TimeLimit fix; an explicit max_steps still ends it as a timeout."""
    import gymnasium as gym

    from fiper.control import loop

    class Endless(gym.Wrapper):
        def step(self, action):
            obs, reward, _, _, info = self.env.step(action)
            return obs, reward, False, False, {}

    _, policy, _ = setup
    agent = MonitoredPolicy(policy, None, num_samples=B)
    monkeypatch.setattr(loop, "EPISODE_STEP_LIMIT", 12)
    with pytest.raises(ValueError, match=r"seed 3 ran 12 steps without ending; give the env a time limit.*TimeLimit"):
        run_episode(Endless(envs.make_env("push_t")), agent, seed=3)
    result = run_episode(Endless(envs.make_env("push_t")), agent, seed=3, max_steps=8)
    assert len(result.steps["action"]) == 8 and result.labels["failure_reason"] == "timeout"


class NarrowActions:
    """push-T whose declared action space is a fifth of the real one: the policy's actions leave it."""

    def __init__(self, env):
        import gymnasium as gym

        self.env = env
        self.action_space = gym.spaces.Box(env.action_space.low / 5, env.action_space.high / 5, dtype=np.float32)

    def __getattr__(self, name):
        return getattr(self.env, name)


def test_actions_outside_the_env_action_space_are_clipped_and_counted(setup):
    """The control loop never hands the env an action outside its action space (beyond the jitter at a bound it
    keeps, BOUNDS_TOLERANCE of the range): it clips, counts and says so, and the decisions keep the chunks as the
    policy commanded them."""
    from fiper.env_io import BOUNDS_TOLERANCE
    from fiper.control.sweep import SweepSummary

    _, policy, _ = setup
    agent = MonitoredPolicy(policy, None, num_samples=B)
    plain = run_episode(make_env(terminate=False), agent, seed=0)
    assert plain.clipped_steps == 0 and plain.clip_excess == 0.0
    narrow = NarrowActions(make_env(terminate=False))
    result = run_episode(narrow, agent, seed=0)
    high = narrow.action_space.high
    assert np.all(np.abs(result.steps["action"]) <= high + BOUNDS_TOLERANCE * 2 * high + 1e-9)
    commanded = np.concatenate([d.executed[: policy.n_action_steps] for d in result.decisions])
    outside = int((np.abs(commanded) > high * 1.02).any(axis=1).sum())
    assert outside > 0 and result.clipped_steps >= outside
    assert result.clip_excess == pytest.approx(float(((np.abs(commanded) - high) / (2 * high)).max()), rel=1e-5)
    assert sum("clipped" in info for info in result.infos) == result.clipped_steps
    summary = SweepSummary()
    summary.add("none", 0.0, result.success, False, result.clipped_steps, result.clip_excess, result.n_steps)
    share = result.clipped_steps / result.n_steps
    assert f"{result.clipped_steps} of the policy's {result.n_steps} actions ({share:.0%}) left the env's action space" in summary.table()
    assert ("most of them, so they likely come in other units" in summary.table()) == (share >= 0.5)


def test_an_env_step_whose_info_is_no_dict_stops_the_rollout_naming_the_fix(setup):
    _, policy, monitor = setup

    class NoInfo(gym.Wrapper):
        def step(self, action):
            return *self.env.step(action)[:4], None

    with pytest.raises(ValueError, match=r"the env's step 0 of seed 5 returned info of type NoneType, not a dict"):
        run_episode(NoInfo(make_env()), MonitoredPolicy(policy, monitor, num_samples=B), seed=5)


def test_an_unreadable_observation_without_a_fallback_names_the_env_not_the_policy_as_what_to_fix(setup):
    from fiper.control import FailSafeError
    from fiper.control.failsafe import fault_owner

    _, policy, monitor = setup
    agent = MonitoredPolicy(policy, monitor, num_samples=B)
    agent.reset(seed=0)
    obs = make_env().reset(seed=0)[0]
    with pytest.raises(FailSafeError, match=r"invalid observation: KeyError: observation lacks \['object'\]") as err:
        agent.act({k: v for k, v in obs.items() if k != "object"})
    assert err.value.source == "observation" and fault_owner(err.value) == "the env's observation"
    assert fault_owner(FailSafeError("the sampled chunks hold NaN")) == "the policy"
