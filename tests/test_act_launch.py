"""python -m launch.act end to end at a tiny size: a briefly trained push-T policy, a monitor that alarms from its
third decision, one shift, two seeds, two responses; the files, the counts against the stores, resuming and refusing,
a policy from a factory, the cells checked against the env, and the videos of alarmed episodes."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir

import envs
from calibration import Threshold
from fiper.collection import collect
from fiper.fingerprint import FingerprintMismatch
from fiper.interventions import HoldPosition, register_fallback
from fiper.monitor import FailureMonitor, save_monitor
from fiper.monitor.decision_data import load_decisions
from fiper.monitor.fitting import fit_monitor
from fiper.monitor.identity import policy_fingerprint
from fiper.storage import EpisodeStore
from launch import act
from policies import PolicyConfig, TrainConfig, load_policy, train_policy

B, MAX_STEPS, ALARM_DECISION = 8, 40, 2
NOMINAL = "cells=[[none,[0.0]]]"  # where the tiny policy's episodes outlast the alarm whatever MuJoCo release computes contacts
CONF = str(Path(act.__file__).resolve().parent / "conf")
POLICY_DIR: list[Path] = []  # the fixture's checkpoint, for tiny_policy


def tiny_policy(device: str = "cpu"):
    """policy_factory=test_act_launch:tiny_policy: the fixture's checkpoint, loaded as an external stack would."""
    return load_policy(POLICY_DIR[-1], device=device)


class Unguided:
    """An adapter whose generator has no steps to guide: it refuses guidance, as docs/adapters.md says it should."""

    def __init__(self, policy):
        self.policy = policy

    def __getattr__(self, name):
        return getattr(self.policy, name)

    def fingerprint(self) -> str | None:
        """The wrapped policy's weights: the monitor was fitted for them."""
        return policy_fingerprint(self.policy)

    def sample(self, embedding, num_samples, *, generator=None, guidance=None):
        if guidance is not None:
            raise ValueError("this generator has no denoising steps to guide")
        return self.policy.sample(embedding, num_samples, generator=generator)


def unguided_policy(device: str = "cpu"):
    """policy_factory=test_act_launch:unguided_policy: the fixture's policy behind an adapter that refuses guidance."""
    return Unguided(tiny_policy(device))


class NonFinite(Unguided):
    """An adapter whose samples are all NaN: a fault of the policy itself, which the run without fiper cannot answer."""

    def sample(self, embedding, num_samples, *, generator=None, guidance=None):
        return torch.full_like(self.policy.sample(embedding, num_samples, generator=generator), float("nan"))


def nan_policy(device: str = "cpu"):
    """policy_factory=test_act_launch:nan_policy: the fixture's policy sampling NaN."""
    return NonFinite(tiny_policy(device))


def unrendered_push_t(max_episode_steps=MAX_STEPS):
    """A user's env factory that cannot render."""
    return envs.make_env("push_t", max_episode_steps=max_episode_steps)


def ignoring_push_t(render_mode=None, max_episode_steps=MAX_STEPS):
    """A user's env factory that takes render_mode and drops it."""
    return envs.make_env("push_t", max_episode_steps=max_episode_steps)


def broken_render_push_t(render_mode=None, max_episode_steps=MAX_STEPS):
    """A user's env factory whose env takes render_mode and fails to render."""
    env = envs.make_env("push_t", render_mode=render_mode, max_episode_steps=max_episode_steps)

    def render():
        raise KeyError("camera")

    env.render = render
    return env


def bare_push_t(render_mode=None, render_size=256, max_episode_steps=MAX_STEPS):
    """A user's env factory that takes no shifts."""
    return envs.make_env("push_t", render_mode=render_mode, render_size=render_size, max_episode_steps=max_episode_steps)


@pytest.fixture(scope="module")
def run_dirs(tmp_path_factory):
    """A tiny push-T policy and a monitor whose thresholds alarm at every decision from the third on."""
    root = tmp_path_factory.mktemp("act")
    env = envs.make_env("push_t")
    collect(env, envs.make_expert(env), EpisodeStore.create(root / "demos.zarr"), 3, seed=0, progress=False)
    cfg = PolicyConfig(kind="diffusion", denoiser="mlp", horizon=8, n_action_steps=4, embed_dim=16, encoder_hidden=32,
                       mlp_hidden=64, mlp_layers=2, num_inference_steps=4)
    train_policy(root / "demos.zarr", TrainConfig(policy=cfg, steps=40, batch_size=64, device="cpu", progress=False, cpu_threads=1,
                                                  val_every=1000, checkpoint_every=10**6), root / "policy")
    policy = load_policy(root / "policy")
    data, identity = load_decisions(EpisodeStore.open(root / "demos.zarr"), policy=policy, num_samples=B)
    fitted = fit_monitor(data, identity, scores={"rnd_oe": {"score": "rnd_oe", "target_widths": [16], "predictor_widths": [32],
                                                            "out_dim": 8, "train": {"max_epochs": 2}}}, windows={"rnd_oe": 1})
    curve = np.r_[np.full(ALARM_DECISION, 1e12), -1e12]
    thresholds = {n: Threshold("time_varying", 0.1, curve, 10, False) for n in fitted.names}
    save_monitor(FailureMonitor(fitted.scores, fitted.identity, windows=fitted.windows, rule=fitted.rule, thresholds=thresholds),
                 root / "monitor")
    POLICY_DIR.append(root / "policy")
    return root


def config(root: Path, out: Path, *extra: str, policy: str | None = None):
    overrides = [policy or f"policy_dir={root / 'policy'}", f"monitor_dir={root / 'monitor'}", f"out={out}", "env=push_t",
                 "responses=[hold,hand_over]", "cells=[[obstacle,[1.0]]]", "seeds.start=5", "seeds.count=2", "progress=false",
                 f"+env.kwargs.max_episode_steps={MAX_STEPS}", *extra]
    with initialize_config_dir(config_dir=CONF, version_base=None):
        return compose(config_name="act", overrides=overrides)


def labels_of(store: EpisodeStore) -> list[str]:
    """Each episode's outcome read straight from the store's labels and recorded interventions."""
    out = []
    for i in range(store.n_episodes):
        stopped = any(str(x).startswith("fallback") for x in store.episode_decisions(i, ["intervention"])["intervention"])
        reason = str(store.meta("failure_reason")[i])
        out.append("success" if store.meta("success")[i] else "damage" if reason != "timeout" else "safe_stop" if stopped else "timeout")
    return out


def store_onsets(store: EpisodeStore) -> list[int]:
    """The env step of each episode's physical failure (-1: a success or a timeout), from its labels."""
    return [int(s) if not ok and str(r) != "timeout" else -1
            for ok, s, r in zip(store.meta("success"), store.meta("failure_step"), store.meta("failure_reason"))]


def first_alarm_step(store: EpisodeStore, i: int) -> int:
    dec = store.episode_decisions(i, ["env_step", "alarm"])
    return int(dec["env_step"][np.argmax(dec["alarm"])]) if dec["alarm"].any() else -1


def test_act_end_to_end_files_counts_resume_and_refusal(run_dirs, tmp_path, capsys):
    out = tmp_path / "act"
    report = act.run(config(run_dirs, out))
    for name in ("without.zarr", "hold.zarr", "hand_over.zarr", "outcome.md", "outcome.json", "outcome.png", "act_config.yaml"):
        assert (out / name).exists(), name
    printed = capsys.readouterr().out
    assert "outcome sweep on push_t: 1 cells x 2 seeds, 0.1 s per env step" in printed and "without fiper" in printed

    stores = {name: EpisodeStore.open(out / f"{name}.zarr") for name in ("without", "hold", "hand_over")}
    assert all(s.n_episodes == 2 for s in stores.values())
    assert sorted(stores["hold"].meta("seed").tolist()) == [5, 6]
    doc = json.loads((out / "outcome.json").read_text())
    base = labels_of(stores["without"])
    assert doc["without"] == {o: base.count(o) for o in ("success", "safe_stop", "damage", "timeout")}
    for name in ("hold", "hand_over"):
        got, res = labels_of(stores[name]), doc["overall"][name]
        assert res["episodes"] == 2 and res["outcomes"] == {o: got.count(o) for o in ("success", "safe_stop", "damage", "timeout")}
        assert res["successes_lost"] == sum(b == "success" and g != "success" for b, g in zip(base, got))
        assert res["physical_to_safe_stop"] == sum(b == "damage" and g == "safe_stop" for b, g in zip(base, got))
        assert res["diverged"] == 0  # the same chunks as without fiper until the response acted
        onset = store_onsets(stores["without"])
        alarm = [first_alarm_step(stores[name], i) for i in range(2)]
        early = [i for i in range(2) if base[i] == "damage" and onset[i] >= 0 and 0 <= alarm[i] < onset[i]]
        assert res["alarmed_before_onset"] == len(early)
        assert res["early_saved"] == sum(got[i] in ("success", "safe_stop") for i in early)
        assert res["cost_ratio"] > 0 and doc["overall"][name] == doc["per_cell"][0]["responses"][name]
        assert report.overall[name].outcomes == res["outcomes"]
    for i in range(2):
        ep_len = len(stores["hand_over"].episode(i, ["action"])["action"])
        dec = stores["hand_over"].episode_decisions(i, ["env_step", "intervention", "alarm"])
        assert not dec["alarm"][:ALARM_DECISION].any()
        if ep_len > 4 * ALARM_DECISION:  # the episode lasted until the alarm: the hand-over nobody answers holds, flagged
            assert dec["intervention"][ALARM_DECISION] == "fallback:hand_over" and dec["env_step"][ALARM_DECISION] == 4 * ALARM_DECISION
            held = stores["hand_over"].episode(i, ["action"])["action"][4 * ALARM_DECISION:]
            assert np.ptp(held, axis=0).max() == 0.0

    act.run(config(run_dirs, out))  # resumes: everything is recorded, nothing runs again
    assert all(EpisodeStore.open(out / f"{n}.zarr").n_episodes == 2 for n in stores)
    assert json.loads((out / "outcome.json").read_text())["overall"] == doc["overall"]
    later = act.run(config(run_dirs, out, "seeds.start=7", "seeds.count=1"))  # one more seed: the report counts all three
    assert all(EpisodeStore.open(out / f"{n}.zarr").n_episodes == 3 for n in stores)
    assert later.seeds == 3 and sum(later.without.values()) == 3
    assert [later.overall[n].episodes for n in ("hold", "hand_over")] == [3, 3]
    assert json.loads((out / "outcome.json").read_text())["overall"]["hold"]["episodes"] == 3

    with pytest.raises(FingerprintMismatch, match=r"intervention.fallback.name: .hold. -> .stop."):
        act.run(config(run_dirs, out, "+response_configs.hold={preset: stop}"))  # another response under the same name
    assert EpisodeStore.open(out / "hold.zarr").n_episodes == 3


def test_act_refuses_unknown_or_incomplete_responses_before_running(run_dirs, tmp_path):
    out = tmp_path / "act"
    with pytest.raises(ValueError, match=r"unknown response 'nope'.*a preset in .*'hold'.*registered fallback"):
        act.run(config(run_dirs, out, "responses=[hold,nope]"))
    with pytest.raises(ValueError, match=r"response 'bare' leaves \['fallback.callback'\] unset"):
        act.run(config(run_dirs, out, "responses=[bare]", "+response_configs.bare={preset: hand_over}"))
    with pytest.raises(ValueError, match=r"responses=\['hold', 'without'\]: expected a non-empty list of distinct names"):
        act.run(config(run_dirs, out, "responses=[hold,without]"))
    with pytest.raises(ValueError, match=r"seeds.count=0: expected an integer >= 1"):
        act.run(config(run_dirs, out, "seeds.count=0"))
    assert not out.exists()
    assert act.response_config("retreat", {}) == {"fallback": {"name": "retreat", "steps": 20, "speed": None}}
    assert act.response_config("stop", {"stop": {"preset": "hold"}}) == {"fallback": {"name": "hold"}}
    with pytest.raises(ValueError, match=r"response_configs.x.preset names no file .*name one of \[.*'retreat'"):
        act.response_config("x", {"x": {"preset": "nope"}})
    register_fallback("act_test_hold", HoldPosition, overwrite=True)  # a response joins by its registered name
    assert act.response_config("act_test_hold", {"act_test_hold": None}) == {"fallback": {"name": "act_test_hold"}}
    with pytest.raises(ValueError, match=r"response 'controller' leaves \['fallback.controller'\] unset"):
        act.response_config("controller", {})


def test_act_runs_a_factory_policy_and_records_it_in_the_fingerprint(run_dirs, tmp_path):
    out = tmp_path / "act"
    report = act.run(config(run_dirs, out, "responses=[hold]", "seeds.count=1", policy="policy_factory=test_act_launch:tiny_policy"))
    assert report.overall["hold"].episodes == 1 and report.overall["hold"].diverged == 0
    for name in ("without", "hold"):
        values = EpisodeStore.open(out / f"{name}.zarr").attrs["fingerprint"]["values"]
        assert values["policy.factory"] == "test_act_launch:tiny_policy" and values["policy.weights"] == policy_fingerprint(tiny_policy())
    with pytest.raises(FingerprintMismatch, match=r"policy"):  # the same weights from a checkpoint directory: another origin
        act.run(config(run_dirs, out, "responses=[hold]", "seeds.count=1"))
    with pytest.raises(ValueError, match=r"policy_dir.*policy_factory"):  # both at once
        act.run(config(run_dirs, tmp_path / "both", "policy_factory=test_act_launch:tiny_policy"))
    assert not (tmp_path / "both").exists()


def test_act_refuses_a_steering_response_for_a_policy_that_refuses_guidance_before_running(run_dirs, tmp_path):
    out = tmp_path / "act"
    with pytest.raises(ValueError, match=r"response 'steer' steers the policy's sampling, but its sample\(\.\.\., guidance=\) "
                                         r"raised ValueError: this generator has no denoising steps to guide.*Drop response 'steer'"):
        act.run(config(run_dirs, out, "responses=[hold,steer]", policy="policy_factory=test_act_launch:unguided_policy"))
    assert not out.exists()


def test_act_names_a_fault_of_the_policy_itself_and_the_fix_instead_of_a_traceback(run_dirs, tmp_path):
    with pytest.raises(ValueError, match=r"fail-safe alarm at env step 0, the chunk to execute holds .*non-finite.*"
                                         r"In launch.act the run without fiper has no fallback.*fix the policy"):
        act.run(config(run_dirs, tmp_path / "act", "responses=[hold]", "seeds.count=1", policy="policy_factory=test_act_launch:nan_policy"))


def test_act_checks_every_cell_against_the_env_before_running(run_dirs, tmp_path):
    out = tmp_path / "act"
    with pytest.raises(ValueError, match=r"the cells name shifts \['obstacle'\] but env.factory=test_act_launch:bare_push_t takes "
                                         r"no 'shifts' parameter.*factories.obstacle="):
        act.run(config(run_dirs, out, "env.factory=test_act_launch:bare_push_t", "env.name=null", "~env.kwargs.max_episode_steps"))
    assert not out.exists()


def test_act_videos_replay_the_first_alarmed_episode_of_each_response(run_dirs, tmp_path, capsys):
    import imageio.v3 as iio

    from launch.act_videos import first_alarmed

    out = tmp_path / "act"
    act.run(config(run_dirs, out, "videos=true", "video_size=64", NOMINAL))  # in distribution: no contact ends an episode at once
    printed = capsys.readouterr().out
    for name in ("hold", "hand_over"):
        path = out / "videos" / f"{name}.mp4"
        frames = iio.imread(path, extension=".mp4")
        store = EpisodeStore.open(out / f"{name}.zarr")
        found = first_alarmed(out / f"{name}.zarr", [("none", 0.0)], [5, 6])
        assert found is not None  # the tiny policy's episodes outlast the alarm at step 8 (seed 5 runs 40 steps under a hold)
        seed, i = found[2:]
        assert len(frames) == len(store.episode(i, ["action"])["action"]) + 1  # the reset and every step
        assert f"video {name}: {path} (none 0, seed {seed}; the recorded episode reproduced)" in printed
    assert not (out / "videos" / "without.mp4").exists()



def test_act_names_a_video_the_encoder_did_not_write_and_keeps_the_sweep(run_dirs, tmp_path, capsys, monkeypatch):
    """An encoder that passes the small up-front probe and writes the 960 x 432 video empty: the sweep's files stand, the
    line names the failure and the fix instead of the file, and an earlier sweep's video at the path is not left there."""
    from ffmpeg_faults import failing_ffmpeg

    out = tmp_path / "act"
    (out / "videos").mkdir(parents=True)
    (out / "videos" / "hold.mp4").write_bytes(b"an earlier sweep's video")
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", failing_ffmpeg(tmp_path, "empty", only_size="960x432"))
    report = act.run(config(run_dirs, out, "videos=true", "video_size=64", "responses=[hold]", NOMINAL))
    assert report.overall["hold"].episodes == 2 and (out / "outcome.json").exists() and (out / "outcome.md").exists()
    assert list((out / "videos").iterdir()) == []
    printed = capsys.readouterr().out
    assert f"video hold: no video: the video {out / 'videos' / 'hold.mp4'} was written empty; check that {out / 'videos'} is " \
           "writable" in printed and "or set videos=false (removed the earlier hold.mp4, of another sweep)" in printed

def test_video_helpers_find_the_first_alarm_and_say_where_a_rerun_diverged(run_dirs, tmp_path):
    from launch.act_videos import divergence, first_alarmed, video_title

    out = tmp_path / "act"
    act.run(config(run_dirs, out, "responses=[hold]", NOMINAL))
    store = EpisodeStore.open(out / "hold.zarr")
    steps = {int(seed): len(store.episode(i, ["action"])["action"]) for i, seed in enumerate(store.meta("seed"))}
    alarmed = [seed for seed in (6, 5) if steps[seed] > 4 * ALARM_DECISION]  # the monitor alarms at its third decision, step 8
    assert alarmed and first_alarmed(out / "hold.zarr", [("none", 0.0)], [6, 5])[:3] == ("none", 0.0, alarmed[0])
    if len(alarmed) == 2:  # sweep order decides
        assert first_alarmed(out / "hold.zarr", [("none", 0.0)], [5, 6])[2] == 5
    assert first_alarmed(out / "hold.zarr", [("obstacle", 1.0)], [5, 6]) is None  # no such episode recorded
    assert first_alarmed(out / "without.zarr", [("none", 0.0)], [5, 6]) is None  # no monitor, no alarm
    a = np.zeros((10, 2))
    b = a.copy()
    b[6, 1] = 0.01
    assert divergence(a, a) is None and divergence(a, b) == 6 and divergence(a, a[:8]) == 8
    assert video_title("push_t", "none", 0.0, 3, "hold", None, 4) == "push_t · in distribution · seed 3 · hold"
    assert video_title("push_t", "obstacle", 1.0, 3, "hold", 2, 4).endswith("re-run differs from the recorded episode at its first decision")
    assert video_title("push_t", "obstacle", 0.5, 3, "hold", 6, 4) == \
        "push_t · obstacle 0.5 · seed 3 · hold · re-run diverged from the recorded episode at step 6"


def test_act_videos_of_an_env_that_cannot_render_are_refused_before_the_sweep(run_dirs, tmp_path):
    """A factory that refuses render_mode, takes it and builds an env that renders nothing, or builds one whose render()
    raises, is named before any episode runs, with the fixes; nothing is written."""
    for factory, match in (("unrendered_push_t", r"and it refused each"),
                           ("ignoring_push_t", r"whose render_mode is None: pass render_mode on to the env"),
                           ("broken_render_push_t", r"and PushTEnv.render\(\) after a reset raised KeyError: 'camera'; fix render\(\) or")):
        out = tmp_path / factory
        with pytest.raises(ValueError, match=r"videos=true (makes the env of cell \(none, 0\) with render_mode='rgb_array'|renders the env).*"
                                             + match + r".*set videos=false \(nothing has run yet\)"):
            act.run(config(run_dirs, out, f"env.factory=test_act_launch:{factory}", "env.name=null", "~env.kwargs.max_episode_steps",
                           "cells=[[none,[0.0]]]", "videos=true"))
        assert not out.exists()


def test_act_replays_the_experts_episode_in_its_check_of_seeded_resets(run_dirs, tmp_path, monkeypatch):
    """expert= (the pipeline checks with collect.expert) reaches the seeded-reset check, whose replay of the expert's
    episode catches state an env keeps across reset that fixed random actions never touch (tests/control); without
    it the check runs the fixed actions alone. Nothing is recorded before the check."""
    seen = []

    def check(make_env, cells, where, seed=0, expert=None):
        seen.append(expert)
        raise SystemExit("stop after the check")

    monkeypatch.setattr(act, "check_seeded_resets", check)
    for extra in ([], ["expert=envs:make_expert"]):
        with pytest.raises(SystemExit, match="stop after the check"):
            act.run(config(run_dirs, tmp_path / "act", *extra))
    assert seen == [None, envs.make_expert] and not (tmp_path / "act").exists()


def test_act_refuses_a_velocity_steering_whose_start_the_observation_does_not_measure(run_dirs, tmp_path):
    out = tmp_path / "act"
    message = ("response_configs.steer.steering.velocity_actions=true integrates the velocities from the robot's measured "
               "position, but the observation has no key 'nope' (it has {'agent_pos': (2,), 'object': (4,), 'obstacle': "
               "(4,)}): name the key that measures the positions the action entries drive, context.agent_pos_key=<key> "
               "(context.agent_pos_dims=[...] picking its entries, in the order of context.position_dims)")
    with pytest.raises(ValueError) as err:
        act.run(config(run_dirs, out, "responses=[steer]", "context.action_mode=velocity", "context.agent_pos_key=nope",
                       "++response_configs.steer.steering.velocity_actions=true"))
    assert str(err.value) == message
    assert not out.exists()


def test_act_steers_velocity_actions_from_the_measured_position_and_scores_them_from_the_recorded_one(run_dirs, tmp_path):
    """push-T's actions read as velocities (only the plumbing is under test): the sweep runs, and the reward column
    lifts each executed chunk from the agent_pos recorded at its decision."""
    report = act.run(config(run_dirs, tmp_path / "act", "responses=[steer]", "seeds.count=1", "context.action_mode=velocity",
                            "++response_configs.steer.steering.velocity_actions=true", "plot=false"))
    reward = report.overall["steer"].reward
    assert reward.note == "" and reward.decisions > 0 and math.isfinite(reward.mean_without)
