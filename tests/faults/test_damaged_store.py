"""Damaged store bytes end in DamagedStoreError naming the store, array, file, episodes and the fix;
launch.repair_store keeps every committed episode that still reads back intact."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fault_stores import assert_same_episode, read_everything, rewrite_chunk, write_store

from fiper.evaluation.rollouts import load_rollouts
from fiper.scores.base import ScoreFitData
from fiper.storage import DamagedStoreError, EpisodeStore, StoreError
from fiper.storage.repair import repair_store

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def store(tmp_path):
    path = tmp_path / "r.zarr"
    return path, write_store(path)


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_truncated_chunk_names_store_array_file_and_fix(store):
    path, _ = store
    _truncate(path / "decisions" / "samples" / "0.0.0.0")
    s = EpisodeStore.open(path)
    with pytest.raises(DamagedStoreError) as info:
        s.episode_decisions(2)
    err = info.value
    assert isinstance(err, StoreError) and isinstance(err, ValueError)
    assert err.array == "decisions/samples" and err.files == ("decisions/samples/0.0.0.0",) and err.episodes == (0, 1, 2, 3)
    msg = str(err)
    for part in (str(path), "decisions/samples/0.0.0.0", "episodes 0-3", "blosc", f"python -m launch.repair_store store={path}"):
        assert part in msg
    # the same error through the readers that take rows of whole episodes
    with pytest.raises(DamagedStoreError, match="decisions/samples"):
        ScoreFitData.from_store(s, episodes=[1, 3])
    with pytest.raises(DamagedStoreError, match="decisions/samples/0.0.0.0"):
        load_rollouts([path])  # offline evaluation


def test_chunk_that_still_decompresses_fails_its_checksum(store):
    path, written = store
    chunk = path / "data" / "frame" / "1.0"  # rows 64..127: episodes 0 and 1
    rewrite_chunk(chunk, lambda v: v.__setitem__((10, 3), v[10, 3] + 1))  # row 74: one value off by one
    s = EpisodeStore.open(path)
    np.testing.assert_array_equal(s.episode(2)["frame"], written[2]["data"]["frame"])  # its rows are intact
    with pytest.raises(DamagedStoreError, match=r"episode 1 of .* in data/frame \(file data/frame/1.0\): the values read differ from the checksum") as info:
        s.episode(1, ["frame"])
    assert info.value.episodes == (1,)
    with pytest.raises(DamagedStoreError, match="episode 1 .*checksum"):
        s.read_data("frame")


def test_wrong_dtype_in_array_metadata_is_caught(store):
    path, _ = store
    zarray = path / "decisions" / "embedding" / ".zarray"
    meta = json.loads(zarray.read_text())
    meta["dtype"] = "<i4"  # same item size: decodes without error into other values
    zarray.write_text(json.dumps(meta))
    with pytest.raises(DamagedStoreError, match="decisions/embedding.*differ from the checksum"):
        EpisodeStore.open(path).episode_decisions(0)


def test_wrong_shape_in_array_metadata_is_caught(store):
    path, _ = store
    zarray = path / "data" / "action" / ".zarray"
    meta = json.loads(zarray.read_text())
    meta["shape"] = [100, 2]
    zarray.write_text(json.dumps(meta))
    with pytest.raises(DamagedStoreError, match=r"episodes 1-3 of .*data/action holds 100 rows but the episode records need 250"):
        EpisodeStore.open(path)
    assert EpisodeStore.open(path, drop_incomplete=True).n_episodes == 1
    partial = EpisodeStore.open(path, mode="a", drop_incomplete=True)
    with pytest.raises(StoreError, match="3 damaged or incomplete episodes .* appending would overwrite them.*launch.repair_store"):
        partial.append_episode({"action": np.zeros((3, 2), np.float32)})
    assert EpisodeStore._open_unchecked(path).n_episodes == 4  # nothing was overwritten


def test_garbled_or_missing_metadata_names_the_file(store):
    path, _ = store
    (path / "meta" / "success" / ".zarray").write_text('{"zarr_format": 2, "sha')
    with pytest.raises(DamagedStoreError, match=r"file meta/success/.zarray\).*do not parse"):
        EpisodeStore.open(path)
    (path / "meta" / "success" / ".zarray").unlink()  # zarr alone would silently drop the array
    with pytest.raises(DamagedStoreError, match=r"meta/success/ \(no .zarray or .zgroup\)"):
        EpisodeStore.open(path)
    (path / ".zgroup").unlink()
    with pytest.raises(DamagedStoreError, match="root .zgroup file is missing"):
        EpisodeStore.open(path)


def test_garbled_checksum_record_and_commit_record(store):
    path, _ = store
    s = EpisodeStore.open(path, mode="a")
    s.root["meta/episode_checksums"][2:3] = ["{not json"]  # zarr 3.1 refuses one str element beside numpy 1.26
    with pytest.raises(DamagedStoreError, match="episode 2 of .*meta/episode_checksums.*does not parse"):
        EpisodeStore.open(path)
    assert EpisodeStore.open(path, drop_incomplete=True).n_episodes == 2
    s.root["meta/episode_ends"][1] = 500  # no longer increasing: where episodes 1.. start is lost
    with pytest.raises(DamagedStoreError, match=r"episodes 2-3 of .*commit record is corrupt from entry 2.*restore the store from a copy"):
        EpisodeStore.open(path)
    s.root["meta/episode_ends"][1] = 120
    s.root["meta/episode_ends"][3] = -250  # a flipped sign bit is corruption, not an interrupted commit (which leaves 0)
    with pytest.raises(DamagedStoreError, match="episode 3 of .*commit record is corrupt from entry 3"):
        EpisodeStore.open(path)
    s.root["meta/episode_ends"][3] = 250
    s.root["meta/episode_ends"].resize((3,))  # metadata lowered by one: the chunk still holds the 4th end
    with pytest.raises(DamagedStoreError, match="a further entry past its recorded shape"):
        EpisodeStore.open(path, drop_incomplete=True)


def test_repair_keeps_every_intact_episode(store):
    path, written = store
    (path / "data" / "frame" / "0.0").unlink()  # rows 0..63: only episode 0
    _truncate(path / "meta" / "shift" / "0")  # a label chunk: every episode's shift is unreadable ...
    with pytest.raises(DamagedStoreError, match=r"episode 0 of .*data/frame/0.0"):
        EpisodeStore.open(path)
    report = repair_store(path, dry_run=True)
    assert report.written is None and sorted(report.scan.damaged) == [0, 1, 2, 3]
    # ... so restore the label chunk from a copy first: repair never invents values
    _restore_label(path, written)
    report = repair_store(path)
    assert report.scan.intact == [1, 2, 3] and list(report.scan.damaged) == [0]
    assert "missing" in report.scan.damaged[0]
    assert report.backup.exists() and not (report.backup / "data" / "frame" / "0.0").exists()
    got = read_everything(path)
    assert got["n"] == 3
    for g, i in zip(got["episodes"], [1, 2, 3]):
        assert_same_episode(g, written[i])
    repaired, original = EpisodeStore.open(path).attrs, EpisodeStore._open_unchecked(report.backup).attrs
    assert repaired["task"] == "faults" and repaired["store_id"] != original["store_id"]
    assert repaired["repaired_from"] == {"store_id": original["store_id"], "path": str(path), "episodes": [1, 2, 3]}
    assert repair_store(path).written is None  # an intact store is left alone


def _restore_label(path: Path, written: list[dict]) -> None:
    import zarr

    arr = zarr.open_array(str(path / "meta" / "shift"), mode="r+")
    arr[:] = np.array([w["meta"]["shift"] for w in written])


def test_repair_command_line(store, tmp_path):
    path, written = store
    chunk = path / "decisions" / "embedding" / "0.0"
    rewrite_chunk(chunk, lambda v: v.__setitem__((32, 0), 7.0))  # the last decision: episode 3
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = tmp_path / "fixed.zarr"
    run = subprocess.run([sys.executable, "-m", "launch.repair_store", f"store={path}", f"out={out}"], env=env,
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "4 committed episodes, 3 intact, 1 damaged" in run.stdout and "episode 3: decisions/embedding" in run.stdout
    assert f"wrote the 3 intact episodes to {out}" in run.stdout
    got = read_everything(out)
    assert got["n"] == 3
    for i in range(3):
        assert_same_episode(got["episodes"][i], written[i])
    assert EpisodeStore.open(path).n_episodes == 4  # the original is untouched with --out
    missing = subprocess.run([sys.executable, "-m", "launch.repair_store", f"store={tmp_path / 'none.zarr'}"], env=env,
                             capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert missing.returncode == 1 and "error: " in missing.stderr and "store=" in missing.stderr and "none.zarr" in missing.stderr and "Traceback" not in missing.stderr
