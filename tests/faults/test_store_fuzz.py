"""Random byte damage to a real store: every read ends in DamagedStoreError or returns exactly the
data that was written; and repair never loses an episode that still reads back intact."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from fault_stores import assert_same_episode, read_everything, write_store
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fiper.storage import DamagedStoreError, EpisodeStore
from fiper.storage.repair import repair_store, scan_store

SETTINGS = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    path = tmp_path_factory.mktemp("fuzz") / "original.zarr"
    written = write_store(path, lengths=(9, 5, 12, 7), frames=False)
    files = sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())
    return path, written, files


@pytest.fixture(scope="module")
def with_frames(tmp_path_factory):
    """A store whose data/frame chunks (64 rows) each hold part of the episodes, so damage reaches only some."""
    path = tmp_path_factory.mktemp("fuzz") / "frames.zarr"
    written = write_store(path)
    files = sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())
    return path, written, files


damage = st.tuples(st.sampled_from(["flip", "truncate", "delete"]), st.integers(0, 10_000), st.integers(0, 10_000), st.integers(1, 255))


def _apply(path: Path, files: list[str], ops) -> None:
    for op, which, where, mask in ops:
        target = path / files[which % len(files)]
        if not target.exists():
            continue
        data = target.read_bytes()
        if op == "delete":
            target.unlink()
        elif op == "truncate":
            target.write_bytes(data[: where % max(1, len(data))])
        elif data:
            i = where % len(data)
            target.write_bytes(data[:i] + bytes([data[i] ^ mask]) + data[i + 1 :])


def _copy(original, tmp_path, n: int) -> Path:
    dest = tmp_path / f"case{n}.zarr"
    shutil.copytree(original, dest)
    return dest


@SETTINGS
@given(ops=st.lists(damage, min_size=1, max_size=3))
def test_damaged_bytes_are_reported_or_harmless(original, tmp_path_factory, ops):
    source, written, files = original
    path = _copy(source, tmp_path_factory.mktemp("case"), 0)
    _apply(path, files, ops)
    try:
        got = read_everything(path)
    except DamagedStoreError as err:
        assert str(path) in str(err) and "Fix:" in str(err)
        return
    assert got["n"] == len(written)
    for g, w in zip(got["episodes"], written):
        assert_same_episode(g, w)


@settings(SETTINGS, max_examples=25)
@given(ops=st.lists(damage, min_size=1, max_size=2))
def test_repair_loses_no_intact_episode(with_frames, tmp_path_factory, ops):
    source, written, files = with_frames
    path = _copy(source, tmp_path_factory.mktemp("case"), 0)
    _apply(path, files, ops)
    try:
        scan = scan_store(path)
    except DamagedStoreError:
        return  # the episodes cannot be located at all: nothing is written or moved
    try:
        report = repair_store(path, out=path.with_name("fixed.zarr"))
    except DamagedStoreError as err:
        assert not scan.intact and "no committed episode reads back intact" in str(err)
        return
    kept = scan.intact if report.written else list(range(len(written)))
    got = read_everything(report.written or path)
    assert got["n"] == len(kept)
    for g, i in zip(got["episodes"], kept):
        assert_same_episode(g, written[i])  # every kept episode is exactly what was written
    hit = {files[which % len(files)] for _, which, _, _ in ops}
    if all(f.split("/")[0] in ("data", "decisions") and not Path(f).name.startswith(".") for f in hit):
        untouched = [i for i, deps in enumerate(_chunks_of_episodes(source)) if not deps & hit]
        assert set(untouched) <= set(scan.intact)  # no episode the damage did not reach is dropped


def _chunks_of_episodes(path: Path) -> list[set[str]]:
    """The data/ and decisions/ chunk files each episode's rows lie in."""
    store = EpisodeStore.open(path)
    out = [set() for _ in range(store.n_episodes)]
    for group, keys, slices in (("data", store.data_keys, store.episode_slice), ("decisions", store.decision_keys, store.decision_slice)):
        for key in keys:
            arr = store.data_array(key) if group == "data" else store.decision_array(key)
            c, sep = arr.chunks[0], arr.metadata.dimension_separator
            for i in range(store.n_episodes):
                sl = slices(i)
                out[i] |= {f"{group}/{key}/" + sep.join([str(k)] + ["0"] * (arr.ndim - 1)) for k in range(sl.start // c, -(-sl.stop // c))}
    return out
