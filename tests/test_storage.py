"""Episode store: round trip, DP layout, atomic append, truncated and foreign stores, windows."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import zarr

from fiper.storage import DamagedStoreError, EpisodeStore, StoreError, TrainingWindows

REPO = Path(__file__).resolve().parents[1]


def _episode(rng, t, e=0, with_decisions=True):
    data = {
        "agent_pos": rng.normal(size=(t, 2)).astype(np.float32),
        "image": rng.integers(0, 255, size=(t, 8, 8, 3), dtype=np.uint8),
        "action": (np.arange(t, dtype=np.float32)[:, None] + 1000 * e).repeat(2, 1),
    }
    n = (t + 3) // 4
    dec = {
        "embedding": rng.normal(size=(n, 16)).astype(np.float32),
        "samples": rng.normal(size=(n, 8, 4, 2)).astype(np.float16),
        "env_step": np.arange(n, dtype=np.int64) * 4,
        "score/ace": rng.random(n),
        "alarm": np.zeros(n, dtype=bool),
    }
    meta = {"success": e % 2 == 0, "failure_step": -1 if e % 2 == 0 else t - 1, "shift": "none" if e < 2 else "obstacle", "severity": 0.5 * e, "seed": e}
    return data, (dec if with_decisions else None), meta


@pytest.fixture
def store_path(tmp_path):
    rng = np.random.default_rng(0)
    store = EpisodeStore.create(tmp_path / "r.zarr", attrs={"env": "push_t"})
    episodes = []
    for e, t in enumerate([7, 12, 5]):
        data, dec, meta = _episode(rng, t, e)
        store.append_episode(data, decisions=dec, meta=meta)
        episodes.append((data, dec, meta))
    return tmp_path / "r.zarr", episodes


def test_round_trip_and_layout(store_path):
    path, episodes = store_path
    store = EpisodeStore.open(path)
    assert store.n_episodes == 3 and store.n_steps == 24
    np.testing.assert_array_equal(store.episode_ends, [7, 19, 24])
    np.testing.assert_array_equal(store.decision_ends, [2, 5, 7])
    for i, (data, dec, meta) in enumerate(episodes):
        got = store.episode(i)
        for k, v in data.items():
            np.testing.assert_array_equal(got[k], v)
        got_dec = store.episode_decisions(i)
        for k, v in dec.items():
            np.testing.assert_array_equal(got_dec[k], v)
    assert list(store.meta("shift")) == ["none", "none", "obstacle"]
    np.testing.assert_array_equal(store.meta("failure_step"), [-1, 11, -1])
    assert store.attrs["env"] == "push_t"
    # diffusion_policy ReplayBuffer layout, zarr format 2, readable by plain zarr
    root = zarr.open_group(str(path), mode="r")
    assert root.metadata.zarr_format == 2
    assert root["meta/episode_ends"].dtype == np.int64
    assert root["data/image"].dtype == np.uint8 and root["data/image"].shape == (24, 8, 8, 3)
    assert json.loads((path / "data" / "action" / ".zarray").read_text())["zarr_format"] == 2
    assert store.data_array("image").chunks[1:] == (8, 8, 3)  # whole frames, time-major chunks


def test_bad_episodes_are_rejected_without_damage(store_path):
    path, _ = store_path
    store = EpisodeStore.open(path, mode="a")
    rng = np.random.default_rng(1)
    data, dec, meta = _episode(rng, 4, 3)
    with pytest.raises(StoreError, match=r"agent_pos: expected per-row shape \(2,\)"):
        store.append_episode({**data, "agent_pos": np.zeros((4, 3), np.float32)}, decisions=dec, meta=meta)
    with pytest.raises(StoreError, match="missing \\['image'\\]"):
        store.append_episode({k: v for k, v in data.items() if k != "image"}, decisions=dec, meta=meta)
    with pytest.raises(StoreError, match=r"unexpected \['failure_reason'\].*earlier episodes were appended without.*"
                                         r"a success's failure_reason '' and failure_step -1"):
        store.append_episode(data, decisions=dec, meta={**meta, "failure_reason": ""})
    with pytest.raises(StoreError, match="rows but the episode has"):
        store.append_episode({**data, "action": data["action"][:2]}, decisions=dec, meta=meta)
    with pytest.raises(StoreError, match="read-only"):
        EpisodeStore.open(path).append_episode(data, decisions=dec, meta=meta)
    assert EpisodeStore.open(path).n_episodes == 3
    store.append_episode(data, decisions=dec, meta=meta)
    assert EpisodeStore.open(path).n_episodes == 4


def test_per_episode_lengths_written_as_episode_ends_are_named_with_the_cumulative_fix(store_path):
    """Another writer's per-episode lengths in meta/episode_ends: named as lengths, with np.cumsum as the fix."""
    path, _ = store_path
    root = zarr.open_group(str(path), mode="a")
    root["meta/episode_ends"][:] = [7, 12, 5]
    with pytest.raises(DamagedStoreError, match=r"meta/episode_ends holds \[7, 12, 5\] \.\.\., which sum to the 24 rows of "
                                                r"data/: each episode's length.*np.cumsum of the lengths"):
        EpisodeStore.open(path)
    # increasing lengths, written without checksum records (zarr directly): no record says an append was interrupted
    # after the third end, so rows that sum to the lengths are lengths too
    root["meta/episode_ends"][:] = [5, 7, 12]
    with pytest.raises(DamagedStoreError, match=r"its commit record says 5 steps .* but it was written with 7 steps"):
        EpisodeStore.open(path)  # append_episode's records disagree with these ends: named as damage, as before
    del root["meta/episode_checksums"]
    with pytest.raises(DamagedStoreError, match=r"holds \[5, 7, 12\] \.\.\., which sum to the 24 rows of data/"):
        EpisodeStore.open(path)
    root["meta/episode_ends"][:] = [5, 12, 24]  # cumulative ends read as they are
    assert EpisodeStore.open(path).episode_lengths.tolist() == [5, 7, 12]


def test_label_of_another_dtype_is_refused_before_anything_is_written(store_path):
    """A text or integer success label appended to a store whose labels are bool names the key and writes nothing."""
    path, _ = store_path
    store = EpisodeStore.open(path, mode="a")
    rows_before = {k: store.data_array(k).shape[0] for k in store.data_keys}
    data, dec, meta = _episode(np.random.default_rng(1), 4, 3)
    for bad in ("False", 0):
        with pytest.raises(StoreError, match=r"meta/success: the store holds bool but this episode gives .*nothing was written"):
            store.append_episode(data, decisions=dec, meta={**meta, "success": bad})
    assert {k: store.data_array(k).shape[0] for k in store.data_keys} == rows_before
    assert EpisodeStore.open(path).n_episodes == 3
    with pytest.raises(StoreError, match=r"meta \['failure_reason'\] given as None, which would be stored as the text 'None'"):
        store.append_episode(data, decisions=dec, meta={**meta, "failure_reason": None})  # a logger's "no reason"
    store.append_episode(data, decisions=dec, meta=meta)
    assert list(EpisodeStore.open(path).meta("success")) == [True, False, True, False]


def test_missing_foreign_and_truncated_stores(tmp_path, store_path):
    path, _ = store_path
    with pytest.raises(StoreError, match="no store at .*launch.collect"):
        EpisodeStore.open(tmp_path / "nope.zarr")
    foreign = zarr.open_group(str(tmp_path / "foreign.zarr"), mode="w", zarr_format=2)
    foreign.create_array("data/x", shape=(3,), dtype="f4")
    with pytest.raises(StoreError, match="missing meta, meta/episode_ends"):
        EpisodeStore.open(tmp_path / "foreign.zarr")
    (tmp_path / "v3.zarr").mkdir()
    zarr.open_group(str(tmp_path / "v3.zarr"), mode="w", zarr_format=3)
    with pytest.raises(StoreError, match="format 3"):
        EpisodeStore.open(tmp_path / "v3.zarr")
    with pytest.raises(StoreError, match="already exists"):
        EpisodeStore.create(path)
    # lose the chunk files of one array, as an interrupted copy would
    for chunk in (path / "data" / "action").iterdir():
        if not chunk.name.startswith("."):
            chunk.unlink()
    with pytest.raises(StoreError, match=r"truncated: data/action .* need 24.*drop_incomplete"):
        EpisodeStore.open(path)
    assert EpisodeStore.open(path, drop_incomplete=True).n_episodes == 0


def test_shorter_array_keeps_complete_episodes(store_path):
    path, episodes = store_path
    arr = zarr.open_array(str(path / "data" / "agent_pos"), mode="r+")
    arr.resize((15, 2))  # episode 1 ends at 19: only episode 0 is complete
    with pytest.raises(StoreError, match="The first 1 of 3 episodes are complete"):
        EpisodeStore.open(path)
    store = EpisodeStore.open(path, drop_incomplete=True)
    assert store.n_episodes == 1
    np.testing.assert_array_equal(store.episode(0)["action"], episodes[0][0]["action"])


WRITER = textwrap.dedent(
    """
    import sys, time, numpy as np
    from fiper.storage import EpisodeStore
    path = sys.argv[1]
    store = EpisodeStore.open_or_create(path)
    rng = np.random.default_rng(0)
    e = store.n_episodes
    while True:
        t = 400
        data = {"obs": rng.normal(size=(t, 64)).astype("f4"), "action": np.full((t, 2), e, "f4")}
        dec = {"samples": rng.normal(size=(t // 8, 32, 16, 2)).astype("f4")}
        store.append_episode(data, decisions=dec, meta={"success": True, "seed": e})
        e += 1
        print(e, flush=True)
    """
)


def test_killed_writer_leaves_earlier_episodes_readable(tmp_path):
    path = tmp_path / "kill.zarr"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    rng = np.random.default_rng(0)
    for _ in range(3):  # kill at several random moments, resuming the same store each time
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, env=env, text=True)
        assert proc.stdout.readline()  # at least one episode committed in this run
        time.sleep(rng.uniform(0.0, 0.3))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        store = EpisodeStore.open(path)
        assert store.n_episodes >= 1
        for i in range(store.n_episodes):  # every committed episode reads back intact
            np.testing.assert_array_equal(store.episode(i, ["action"])["action"], np.full((400, 2), i, "f4"))
            assert store.episode_decisions(i)["samples"].shape == (50, 32, 16, 2)
        np.testing.assert_array_equal(store.meta("seed"), np.arange(store.n_episodes))
    shutil.rmtree(path)


def test_training_windows_pad_at_episode_edges(store_path):
    path, episodes = store_path
    store = EpisodeStore.open(path)
    windows = TrainingWindows(store, ["agent_pos"], n_obs_steps=2, horizon=4)
    assert len(windows) == store.n_steps
    obs, act = windows.batch([0, 6, 7, 18])
    assert obs["agent_pos"].shape == (4, 2, 2) and act.shape == (4, 4, 2)
    first = episodes[0][0]["agent_pos"][0]
    np.testing.assert_array_equal(obs["agent_pos"][0], [first, first])  # history padded with step 0
    np.testing.assert_array_equal(act[1, :, 0], [6, 6, 6, 6])  # last step of episode 0 repeats
    np.testing.assert_array_equal(act[2, :, 0], [1000, 1001, 1002, 1003])  # episode 1 starts fresh
    np.testing.assert_array_equal(act[3, :, 0], [1011, 1011, 1011, 1011])
    lazy = TrainingWindows(store, ["agent_pos", "image"], 2, 4, in_memory=False)
    eager = TrainingWindows(store, ["agent_pos", "image"], 2, 4, in_memory=True)
    idx = np.random.default_rng(0).integers(0, len(lazy), 16)
    (lo, la), (eo, ea) = lazy.batch(idx), eager.batch(idx)
    np.testing.assert_array_equal(la, ea)
    np.testing.assert_array_equal(lo["image"], eo["image"])
    subset = TrainingWindows(store, ["agent_pos"], 2, 4, episodes=[2])
    assert len(subset) == 5
    with pytest.raises(KeyError, match="no data/wrist"):
        TrainingWindows(store, ["wrist"], 2, 4)
