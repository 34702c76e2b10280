"""A steering response's reward scored on the chunks each run executed, paired by seed with the run without fiper:
the figure from hand-made stores whose executed chunks satisfy the reward by known amounts, nothing for a response
without a reward, a note naming a reward that fails on the recorded chunks, and a scene reward bound per episode."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from fiper.evaluation.outcome import outcome_report
from fiper.evaluation.render.outcome import outcome_markdown, outcome_table, write_outcome
from fiper.interventions import FallbackContext, GradedResponse, KeepOut, SceneKeepOut, Steering, load_reward, make_fallback
from fiper.storage import EpisodeStore

N, H, A = 10, 4, 2  # decisions per episode, chunk horizon, action entries
ACT = 5  # the response acts from this decision on


def mean_x(trajectory):
    """Higher the further along x the chunk's path goes: the known amount is the mean x of the chunks."""
    return trajectory[..., 0].mean(-1)


def append(store: EpisodeStore, shift: str, seed: int, xs, *, acting=(), stages=None):
    """One episode of N decisions, one every 4 steps; decision i executed a chunk at x = xs[i] (NaN: a fallback acted)
    and, ``stages`` given, steered by stage program stages[i]."""
    executed = np.zeros((N, H, A), np.float32)
    executed[..., 0] = np.asarray(xs, np.float32)[:, None]
    intervention = np.array(["none"] * N, dtype=object)
    for i, label in acting:
        intervention[i] = label
    steps = np.arange(N) * 4
    decisions = {"env_step": steps, "alarm": np.arange(N) >= ACT, "intervention": intervention.astype(str),
                 "timing/total_ms": np.full(N, 10.0), "executed": executed,
                 **({"steer_stage": np.asarray(stages, np.int64)} if stages is not None else {})}
    meta = {"success": True, "failure_step": -1, "failure_reason": "", "shift": shift,
            "severity": 0.0 if shift == "none" else 1.0, "seed": seed}
    store.append_episode({"action": np.zeros((4 * N, A))}, decisions=decisions, meta=meta)


# (cell, seed) -> x of the steered decisions (from ACT on); before them both runs executed x = 0.1 * seed
STEERED = {("none", 0): None, ("none", 1): None, ("obstacle", 0): 0.4, ("obstacle", 1): 0.8}


@pytest.fixture
def stores(tmp_path):
    made = {n: EpisodeStore.create(tmp_path / f"{n}.zarr", attrs={"task": "t", "control_period_s": 0.1})
            for n in ("without", "steer", "hold")}
    for (shift, seed), x in STEERED.items():
        base = np.full(N, 0.1 * seed)
        append(made["without"], shift, seed, base)
        steered = base.copy()
        acting = ()
        if x is not None:
            steered[ACT:] = x
            acting = [(i, "steer") for i in range(ACT, N)]
            if seed == 1:  # the last two decisions handed to a fallback: no chunk executed there
                steered[N - 2:] = np.nan
                acting = [(i, "steer") for i in range(ACT, N - 2)] + [(i, "fallback:hold") for i in range(N - 2, N)]
        append(made["steer"], shift, seed, steered, acting=acting)
        held = base.copy()
        held[ACT:] = np.nan
        append(made["hold"], shift, seed, held, acting=[(i, "fallback:hold") for i in range(ACT, N)])
    return tmp_path


def responses(reward=mean_x):
    return {"steer": GradedResponse(Steering(reward, position_dims=(0, 1)), make_fallback("hold")),
            "hold": GradedResponse(None, make_fallback("hold"))}


def test_the_reward_of_the_executed_chunks_is_paired_with_the_run_without_fiper(stores, tmp_path):
    report = outcome_report(stores / "without.zarr", {"steer": stores / "steer.zarr", "hold": stores / "hold.zarr"},
                            steering=responses())
    got = report.overall["steer"].reward
    # per-episode means with - without: none cells 0; obstacle seed 0: 5 of 10 chunks at 0.4 instead of 0
    # -> 0.2; seed 1: 3 of its 8 executed chunks at 0.8 instead of 0.1 -> (5 * 0.1 + 3 * 0.8) / 8 - 0.1
    diffs = np.array([0.0, 0.0, 0.2, (5 * 0.1 + 3 * 0.8) / 8 - 0.1])
    assert got.reward == "mean_x" and got.note == "" and got.episodes == 4
    assert got.decisions == 38  # the two decisions a fallback took over executed no chunk: not compared
    assert got.difference == pytest.approx(diffs.mean(), abs=1e-6)
    assert got.se == pytest.approx(diffs.std(ddof=1) / 2, abs=1e-6)
    assert got.mean_without == pytest.approx(np.mean([0.0, 0.1, 0.0, 0.1]), abs=1e-6)
    assert got.mean - got.mean_without == pytest.approx(got.difference, abs=1e-6)
    cell = report.per_cell[("obstacle", 1.0)]["steer"].reward
    assert cell.episodes == 2 and cell.difference == pytest.approx(diffs[2:].mean(), abs=1e-6)
    none = report.per_cell[("none", 0.0)]["steer"].reward
    assert none.difference == 0.0 and none.se == 0.0

    # a response without a reward shows nothing: no value in the table, null in outcome.json
    assert report.overall["hold"].reward is None and report.per_cell[("none", 0.0)]["hold"].reward is None
    paths = write_outcome(report, tmp_path / "out", plot=False)
    doc = json.loads(paths["json"].read_text())
    assert doc["overall"]["hold"]["reward"] is None
    assert doc["overall"]["steer"]["reward"]["difference"] == pytest.approx(diffs.mean(), abs=1e-6)
    assert doc["per_cell"][1]["responses"]["steer"]["reward"]["episodes"] == 2
    table = outcome_table(report)
    head, rows = table.splitlines()[1], {line.split()[0]: line for line in table.splitlines()[3:6]}
    assert head.rstrip().endswith("reward Δ")
    assert rows["steer"].rstrip().endswith(f"+{diffs.mean():.3g} ± {diffs.std(ddof=1) / 2:.2g}")
    assert rows["hold"].rstrip().endswith("×") and rows["without"].rstrip().endswith("0")  # nothing in the column
    md = paths["markdown"].read_text()
    assert "### Steering reward on the executed chunks" in md and "| steer | `mean_x` | 4 | 38 |" in md
    assert "**steering reward Δ ± SE**:" in md and "| hold | `" not in md


def test_a_reward_that_fails_on_the_recorded_chunks_is_named_not_raised(stores, tmp_path):
    (tmp_path / "picky.py").write_text(
        "def picky(trajectory):\n"
        "    if bool((trajectory[..., 0] > 0.5).any()):\n"
        "        raise ValueError('no path beyond x = 0.5')\n"
        "    return trajectory[..., 0].mean(-1)\n")
    reward = load_reward(str(tmp_path / "picky.py") + ":picky")
    report = outcome_report(stores / "without.zarr", {"steer": stores / "steer.zarr", "hold": stores / "hold.zarr"},
                            steering=responses(reward))
    got = report.overall["steer"]
    assert got.outcomes["success"] == 4 and got.reward is not None and math.isnan(got.reward.difference)
    assert "picky.py:picky" in got.reward.note and "obstacle 1, seed 1" in got.reward.note
    assert "no path beyond x = 0.5" in got.reward.note
    table = outcome_table(report)
    assert "note: the steering reward of 'steer' was not evaluated: reward " in table and "not evaluated" in table
    assert "**Note:** the steering reward of 'steer'" in outcome_markdown(report)


class ObstacleEnv:
    """Places an obstacle per seed, as a stress env does at reset."""

    def __init__(self):
        self.seed, self.unwrapped = None, self

    def reset(self, seed=None, options=None):
        self.seed = seed
        return {"agent_pos": np.zeros(2)}, {}

    def scene_obstacles(self):
        return [{"center": [0.1 * self.seed, 0.0, 0.0], "radius": 0.05}]

    def close(self):
        pass


def test_a_reward_that_reads_the_scene_is_bound_to_each_episodes_seed(stores):
    arms = {"steer": stores / "steer.zarr"}
    scene = {"steer": Steering(SceneKeepOut(margin=0.0, tau=1e-4), position_dims=(0, 1))}
    report = outcome_report(stores / "without.zarr", arms, steering=scene, make_env=lambda shift, severity: ObstacleEnv())
    got = report.overall["steer"].reward
    # without fiper every chunk sits at the centre of its seed's obstacle (x = 0.1 * seed): inside by the radius
    inside = float(KeepOut([0.0, 0.0, 0.0], 0.05, tau=1e-4)(torch.zeros(1, H, 3)))
    assert got.note == "" and inside < -0.05 and got.mean_without == pytest.approx(inside, rel=1e-4)
    # steering moved the obstacle cell's later chunks out of the zone: reward 0 there
    assert got.difference == pytest.approx(-inside * (5 / 10 + 3 / 8) / 4, rel=1e-3)
    unbound = outcome_report(stores / "without.zarr", arms, steering=scene).overall["steer"].reward
    assert math.isnan(unbound.difference) and "reads the scene" in unbound.note


def velocity_stores(tmp_path, record_position: bool = True):
    """One episode per arm: every decision executed 0.5 m/s along x for H steps of 0.1 s, from agent_pos (0.15, y): the
    run without fiper at y = 0.1, through the zone around (0.3, 0.1); the steered run at y = 0.3, clear of it."""
    for name, y in (("without", 0.1), ("steer", 0.3)):
        store = EpisodeStore.create(tmp_path / f"{name}.zarr", attrs={"task": "t", "control_period_s": 0.1})
        executed = np.zeros((N, H, A), np.float32)
        executed[..., 0] = 0.5
        steps = {"action": np.zeros((4 * N, A))}
        if record_position:
            steps["agent_pos"] = np.tile(np.float32([0.15, y]), (4 * N, 1))
        decisions = {"env_step": np.arange(N) * 4, "alarm": np.zeros(N, bool), "intervention": np.array(["none"] * N),
                     "timing/total_ms": np.full(N, 10.0), "executed": executed}
        store.append_episode(steps, decisions=decisions, meta={"success": True, "failure_step": -1, "failure_reason": "",
                                                               "shift": "none", "severity": 0.0, "seed": 0})
    return {"steer": tmp_path / "steer.zarr"}


def test_velocity_chunks_are_scored_from_the_position_recorded_at_their_decision(tmp_path):
    arms = velocity_stores(tmp_path)
    steer = {"steer": Steering(KeepOut([0.3, 0.1], radius=0.05), position_dims=(0, 1), velocity_actions=True)}
    context = {"steer": FallbackContext(2, [0, 1], action_mode="velocity", control_period_s=0.1)}
    got = outcome_report(tmp_path / "without.zarr", arms, steering=steer, contexts=context).overall["steer"].reward
    # without fiper: 0.20 .. 0.35 along y = 0.1, 0.1 m through the disc of every chunk; steered: 0.2 m beside it
    assert got.note == "" and got.decisions == N
    assert got.mean_without < -0.05 and got.mean > -1e-5 and got.difference > 0.05
    slow = {"steer": FallbackContext(2, [0, 1], action_mode="velocity", control_period_s=0.1, velocity_scale=0.25)}
    short = outcome_report(tmp_path / "without.zarr", arms, steering=steer, contexts=slow).overall["steer"].reward
    assert short.mean_without > -1e-3 > got.mean_without  # a unit commands 0.25 units/s: 0.1625 .. 0.2, short of the disc
    no_period = outcome_report(tmp_path / "without.zarr", arms, steering=steer).overall["steer"].reward
    assert "lacks the seconds per env step" in no_period.note or "no FallbackContext" in no_period.note
    unrecorded = velocity_stores(tmp_path / "bare", record_position=False)
    note = outcome_report(tmp_path / "bare" / "without.zarr", unrecorded, steering=steer, contexts=context).overall["steer"].reward.note
    assert "records no observation ['agent_pos']" in note and "record_keys=[..., agent_pos]" in note


def negative_x(trajectory):
    """The second stage's program: the chunk's path should come back towards x = 0."""
    return -trajectory[..., 0].mean(-1)


def test_a_staged_steering_scores_each_decision_by_the_program_it_steered_by(tmp_path):
    stages = [0] * 7 + [1] * 3  # the response moved to its second program at decision 7
    made = {n: EpisodeStore.create(tmp_path / f"{n}.zarr", attrs={"task": "t", "control_period_s": 0.1})
            for n in ("without", "steer", "unstaged")}
    append(made["without"], "obstacle", 0, np.zeros(N))
    steered = np.where(np.arange(N) >= ACT, 0.4, 0.0)
    append(made["steer"], "obstacle", 0, steered, acting=[(i, "steer") for i in range(ACT, N)], stages=stages)
    append(made["unstaged"], "obstacle", 0, steered, acting=[(i, "steer") for i in range(ACT, N)])
    staged = {name: GradedResponse(Steering([mean_x, negative_x], position_dims=(0, 1)), make_fallback("hold"))
              for name in ("steer", "unstaged")}
    report = outcome_report(tmp_path / "without.zarr", {n: tmp_path / f"{n}.zarr" for n in ("steer", "unstaged")},
                            steering=staged)
    got = report.overall["steer"].reward
    # decisions 5, 6 under mean_x at 0.4; 7-9 under negative_x at -0.4; the run without fiper 0 under both
    assert got.note == "" and got.decisions == N and got.reward == "mean_x → negative_x"
    assert got.difference == pytest.approx((2 * 0.4 - 3 * 0.4) / N, abs=1e-6) and got.mean_without == 0.0
    unstaged = report.overall["unstaged"].reward
    assert math.isnan(unstaged.difference) and "records no decisions/steer_stage" in unstaged.note
