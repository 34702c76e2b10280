"""The stress sweep's summary counts every episode of its store, those recorded before a resume too."""

from __future__ import annotations

import numpy as np

from fiper.control import RolloutRecorder
from fiper.control.sweep import SweepSummary, run_sweep
from fiper.storage import EpisodeStore


def _episode(store: EpisodeStore, shift: str, severity: float, seed: int, success: bool, alarm: int) -> None:
    meta = {"success": success, "failure_step": -1 if success else 5, "failure_reason": "" if success else "dropped",
            "shift": shift, "severity": severity, "seed": seed, "first_alarm_step": alarm}
    store.append_episode({"action": np.zeros((8, 2), np.float32)}, decisions={"env_step": np.arange(0, 8, 4)}, meta=meta)


def _never(*_):
    raise AssertionError("an episode the store holds was run again")


def test_a_resumed_sweep_counts_the_episodes_recorded_before_it(tmp_path):
    store = EpisodeStore.create(tmp_path / "r.zarr", attrs={"task": "t"})
    for seed, (ok, alarm) in enumerate([(True, -1), (False, 3), (True, 4)]):
        _episode(store, "none", 0.0, seed, ok, alarm)
    _episode(store, "obstacle", 0.5, 0, False, 2)  # a cell of an earlier run this one does not name
    summary = run_sweep(_never, None, [("none", 0.0)], range(3), RolloutRecorder(tmp_path / "r.zarr"), progress=False)
    assert summary.run_now == 0
    assert summary.rows == {("none", 0.0): {"episodes": 3, "success": 2, "alarmed": 2, "successes alarmed": 1},
                            ("obstacle", 0.5): {"episodes": 1, "success": 0, "alarmed": 1, "successes alarmed": 0}}
    table = summary.table()
    assert "4 episodes in the store: 0 run now, 4 recorded before" in table
    # false alarms and detections apart: 1 of the 2 successes alarmed, the 1 failure alarmed
    assert table.splitlines()[0].split()[-4:] == ["successes", "alarmed", "failures", "alarmed"]
    assert table.splitlines()[1].split() == ["none", "0.00", "3", "2", "2", "1", "of", "2", "1", "of", "1"]


def test_a_summary_of_episodes_run_now_only_says_nothing_of_earlier_ones():
    summary = SweepSummary()
    summary.add("none", 0.0, True, False)
    assert summary.run_now == 1 and "recorded before" not in summary.table()


STEPS = 8  # env steps of every stub episode


class _Env:
    def close(self):
        pass


def _result(seed: int, clipped: dict[int, int], said: dict[int, str], labels: dict):
    """Seed s's episode: it clips ``clipped[s]`` actions (by up to s/10 of the range), and fails 'terminated' saying
    why in words of its own when ``said`` has it."""
    from fiper.control.loop import EpisodeResult
    from fiper.control.monitored_policy import Decision

    decisions = [Decision(t, np.zeros(3, np.float32), np.zeros((2, 4, 2)), np.zeros((4, 2)), None, "none", False)
                 for t in range(0, STEPS, 4)]
    ok = seed not in said
    out = {"success": ok, "failure_step": -1 if ok else STEPS - 1, "failure_reason": "" if ok else "terminated", "seed": seed,
           **labels}
    return EpisodeResult({"action": np.zeros((STEPS, 2), np.float32)}, decisions, out, [], clipped.get(seed, 0),
                         seed / 10 if clipped.get(seed) else 0.0, {} if ok else {"why": said[seed]})


def _stub_episodes(monkeypatch, clipped: dict[int, int], said: dict[int, str]):
    """run_sweep's episodes without an env or policy (``_result``)."""
    from fiper.control import sweep

    monkeypatch.setattr(sweep, "run_episode", lambda env, agent, *, seed, record_keys, labels: _result(seed, clipped, said, labels))


def test_a_resumed_sweeps_notes_count_the_clipped_actions_and_unnamed_terminations_recorded_before_it(tmp_path, monkeypatch):
    clipped, said = {0: 2, 1: 3, 2: 1}, {1: "box fell", 3: "tipped over"}
    _stub_episodes(monkeypatch, clipped, said)
    first = run_sweep(lambda *_: _Env(), None, [("none", 0.0)], range(2), RolloutRecorder(tmp_path / "r.zarr"), progress=False)
    assert (first.clipped_steps, first.total_steps, first.unnamed) == (5, 2 * STEPS, 1)
    store = EpisodeStore.open(tmp_path / "r.zarr")
    assert store.meta("clipped_steps").tolist() == [2, 3] and store.meta("unread_info").tolist() == ["", '{"why": "box fell"}']
    resumed = run_sweep(lambda *_: _Env(), None, [("none", 0.0)], range(4), RolloutRecorder(tmp_path / "r.zarr"), progress=False)
    assert resumed.run_now == 2 and resumed.uncounted == 0
    assert (resumed.clipped_steps, resumed.total_steps, resumed.clip_excess) == (6, 4 * STEPS, 0.2)
    assert (resumed.unnamed, resumed.unnamed_words) == (2, {"why": "box fell"})
    table = resumed.table()
    assert f"6 of the policy's {4 * STEPS} actions (19%) left the env's action space (by up to 20% of an entry's range)" in table
    assert "note: 2 failed episodes ended terminated without info['failure_reason'] (one's final info said why='box fell'" in table
    assert "run now only" not in table


def test_a_store_recorded_without_the_note_meta_says_which_episodes_the_notes_count(tmp_path, monkeypatch):
    earlier = RolloutRecorder(tmp_path / "r.zarr")
    for seed in range(3):  # recorded without meta/clipped_steps, clip_excess, unread_info
        result = _result(seed, {0: 5}, {1: "box fell"}, {"shift": "none", "severity": 0.0})
        earlier.write(result.steps, result.decisions, result.labels)
    _stub_episodes(monkeypatch, {3: 4}, {3: "tipped over"})
    summary = run_sweep(lambda *_: _Env(), None, [("none", 0.0)], range(4), RolloutRecorder(tmp_path / "r.zarr"), progress=False)
    assert "clipped_steps" not in EpisodeStore.open(tmp_path / "r.zarr").meta_keys  # appended with the store's own keys
    assert (summary.clipped_steps, summary.total_steps, summary.unnamed, summary.uncounted) == (4, STEPS, 1, 3)
    table = summary.table()
    assert f"4 of the policy's {STEPS} actions (50%)" in table and "note: 1 failed episode ended terminated" in table
    assert ("the notes on clipped actions and unnamed terminations count the 1 episode run now only: the 3 recorded before "
            "carry no meta/clipped_steps, meta/clip_excess, meta/unread_info") in table


def test_stores_with_and_without_the_note_meta_merge_without_it(tmp_path, monkeypatch):
    from fiper.storage.merge import merge_stores

    earlier = RolloutRecorder(tmp_path / "old.zarr")
    result = _result(0, {0: 5}, {}, {"shift": "none", "severity": 0.0})
    earlier.write(result.steps, result.decisions, result.labels)  # recorded without meta/clipped_steps, ...
    _stub_episodes(monkeypatch, {1: 2}, {})
    run_sweep(lambda *_: _Env(), None, [("none", 0.0)], [1], RolloutRecorder(tmp_path / "new.zarr"), progress=False)
    outcome = merge_stores([tmp_path / "old.zarr", tmp_path / "new.zarr"], tmp_path / "m.zarr")
    merged = EpisodeStore.open(tmp_path / "m.zarr")
    assert outcome.taken == [1, 1] and merged.meta("seed").tolist() == [0, 1] and "clipped_steps" not in merged.meta_keys
    merge_stores([tmp_path / "new.zarr"], tmp_path / "kept.zarr")  # every source records them: kept
    assert EpisodeStore.open(tmp_path / "kept.zarr").meta("clipped_steps").tolist() == [2]


def test_an_outcome_sweeps_notes_count_every_episode_of_each_arms_store(tmp_path, monkeypatch, capsys):
    from launch import act

    said: dict[int, str] = {}
    monkeypatch.setattr(act, "run_episode", lambda env, agent, *, seed, record_keys, labels: _result(seed, {0: 2, 1: 3}, said, labels))
    arms = ("without", "hold")
    run = lambda seeds: act.run_paired(lambda *_: _Env(), dict.fromkeys(arms), {a: RolloutRecorder(tmp_path / f"{a}.zarr") for a in arms},  # noqa: E731
                                       [("none", 0.0)], seeds, progress=False)
    assert run(range(1)) == 2
    assert f"hold: 2 of the policy's {STEPS} actions (25%)" in capsys.readouterr().out
    assert run(range(2)) == 2  # resumed: seed 1 only, the notes count seed 0's episode too
    out = capsys.readouterr().out
    assert f"without: 5 of the policy's {2 * STEPS} actions (31%)" in out and f"hold: 5 of the policy's {2 * STEPS}" in out
