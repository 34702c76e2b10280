"""Each decision records the stage program its steering steered by (``decisions/steer_stage``), read before the
executed chunk moves the stage tracker on, so the outcome report can score a staged steering offline."""

from __future__ import annotations

import numpy as np
from test_velocity_steering import OBS, agent, policy  # noqa: F401  (policy: the module's fixture)

from fiper.control import MonitoredPolicy
from fiper.control.recorder import decision_arrays, episode_meta
from fiper.interventions import FallbackContext, GradedResponse, HoldPosition, KeepOut


def reached(trajectory):
    """A first stage that every chunk already satisfies (reward 0): the tracker advances after the first decision."""
    return trajectory[..., 0].mean(-1) * 0.0


def test_a_staged_steering_records_the_program_of_each_decision_and_no_steering_records_none(policy):
    steered = agent(policy, [reached, KeepOut([0.0, 0.0], 0.3)], FallbackContext(2, [0, 1]), velocity=False)
    while len(steered.decisions) < 3:
        steered.act(OBS)
    stages = [d.steer_stage for d in steered.decisions]
    assert stages[0] == 0 and all(s == 1 for s in stages[1:]), stages  # the first steered by 'reached', then the keep-out
    assert steered.response.steering.tracker.stage[0] == 1
    assert decision_arrays(steered.decisions, ())["steer_stage"].tolist() == stages
    plain = MonitoredPolicy(policy, None, response=GradedResponse(None, fallback=HoldPosition()),
                            context=FallbackContext(2, [0, 1]), num_samples=4)
    plain.act(OBS)
    assert [d.steer_stage for d in plain.decisions] == [-1]
    steered.reset()
    steered.act(OBS)
    assert steered.decisions[0].steer_stage == 0  # a new episode starts at the first program
    assert np.isfinite(steered.decisions[0].executed).all()


def test_a_store_recorded_without_the_stage_resumes_and_merges_without_it(policy, tmp_path):
    from fiper.control import RolloutRecorder
    from fiper.storage import EpisodeStore
    from fiper.storage.merge import merge_stores

    steered = agent(policy, KeepOut([0.0, 0.0], 0.3), FallbackContext(2, [0, 1]), velocity=False)
    while len(steered.decisions) < 2:
        steered.act(OBS)
    steps = {"action": np.zeros((4, 2))}
    labels = {"success": True, "shift": "none", "severity": 0.0}
    old = EpisodeStore.create(tmp_path / "old.zarr")  # as a store begun without decisions/steer_stage holds its episodes
    arrays = {k: v for k, v in decision_arrays(steered.decisions, ()).items() if k != "steer_stage"}
    old.append_episode(steps, decisions=arrays, meta=episode_meta(steered.decisions, {**labels, "seed": 0}, 4))
    RolloutRecorder(tmp_path / "old.zarr").write(steps, steered.decisions, {**labels, "seed": 1})  # resumed: its own keys
    assert "steer_stage" not in EpisodeStore.open(tmp_path / "old.zarr").decision_keys
    RolloutRecorder(tmp_path / "new.zarr").write(steps, steered.decisions, {**labels, "seed": 2})
    merge_stores([tmp_path / "old.zarr", tmp_path / "new.zarr"], tmp_path / "m.zarr")
    merged = EpisodeStore.open(tmp_path / "m.zarr")
    assert merged.n_episodes == 3 and "steer_stage" not in merged.decision_keys
    merge_stores([tmp_path / "new.zarr"], tmp_path / "kept.zarr")  # every source records it: kept
    assert EpisodeStore.open(tmp_path / "kept.zarr").read_decisions("steer_stage").tolist() == [0] * len(steered.decisions)
