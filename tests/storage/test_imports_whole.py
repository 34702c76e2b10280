"""The importers write their store whole or not at all: a video that ends early, an episode whose frames are missing,
a demo that does not decompress, or Ctrl-C half-way leaves no store at ``out`` and nothing beside it that reads as one;
with overwrite=true the store already at ``out`` keeps every episode until the new one is complete."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from fiper.storage import EpisodeStore, StoreError

pytest.importorskip("pyarrow")
pytest.importorskip("h5py")
import lerobot_datasets as L  # noqa: E402
import robomimic_datasets as R  # noqa: E402
from fiper.storage.lerobot_import import LeRobotImportError, import_lerobot  # noqa: E402
from fiper.storage.robomimic_import import RobomimicImportError, import_robomimic  # noqa: E402


def _tree(path: Path) -> dict[str, str]:
    """Every file under ``path`` (hidden ones too) by its digest."""
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(path.rglob("*")) if p.is_file()}


def _existing_store(path: Path) -> dict[str, str]:
    store = EpisodeStore.create(path, attrs={"task": "earlier"})
    for n in (4, 6):
        store.append_episode({"action": np.arange(2 * n, dtype=np.float32).reshape(n, 2)})
    del store
    return _tree(path)


def _truncate_episode_2_video(root: Path) -> None:
    L._write_video(root / "videos" / "observation.image" / "chunk-000" / "file-001.mp4", L.episode_frames(4))


def _drop_frames_of_episode_1(root: Path) -> None:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    path = root / "data" / "chunk-000" / "file-000.parquet"
    table = pq.read_table(path)
    keep = pc.or_(pc.not_equal(table["episode_index"], 1), pc.less(table["frame_index"], 2))
    pq.write_table(table.filter(keep), path)


@pytest.mark.parametrize(("damage", "named"), [
    (_truncate_episode_2_video, r"file-001.mp4 ends after 4 of episode 2's 9 frames; the video is truncated"),
    (_drop_frames_of_episode_1, r"episode 1 lists 5 frames in the dataset's episode index but data/ holds 2"),
])
def test_a_lerobot_dataset_found_incomplete_half_way_leaves_no_store(tmp_path, damage, named):
    root = L.write_v30(tmp_path / "pusht")
    damage(root)
    out = tmp_path / "demos.zarr"
    with pytest.raises(LeRobotImportError, match=named):
        import_lerobot(root, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pusht"]  # no out, no hidden partial store beside it
    before = _existing_store(out)
    with pytest.raises(LeRobotImportError, match=named):
        import_lerobot(root, out, overwrite=True)
    assert _tree(out) == before and EpisodeStore.open(out).episode_lengths.tolist() == [4, 6]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demos.zarr", "pusht"]


def test_a_lerobot_import_replaces_an_existing_store_only_once_complete(tmp_path):
    root, out = L.write_v21(tmp_path / "pusht"), tmp_path / "demos.zarr"
    _existing_store(out)
    with pytest.raises(StoreError, match=r"demos.zarr already exists; pass overwrite=true to replace it"):
        import_lerobot(root, out)
    store = import_lerobot(root, out, overwrite=True)
    assert store.episode_lengths.tolist() == list(L.LENGTHS) and store.attrs["task"] == "pusht"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demos.zarr", "pusht"]  # the old store removed, nothing left


def test_overwrite_replaces_only_a_store(tmp_path):
    root, out = R.write(tmp_path / "low_dim.hdf5"), tmp_path / "results"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(StoreError, match=r"results exists and is not a fiper store, so overwrite=true would delete what it holds"):
        import_robomimic(root, out, overwrite=True)
    assert (out / "notes.txt").read_text() == "keep me"


def _corrupt_demo_10(dataset: Path) -> None:
    """Overwrite the compressed bytes of demo_10's camera frames (the third demo imported)."""
    import h5py

    with h5py.File(dataset, "r") as f:
        chunk = f["data/demo_10/obs/agentview_image"].id.get_chunk_info(0)
    with open(dataset, "r+b") as fh:
        fh.seek(chunk.byte_offset)
        fh.write(b"\xff" * chunk.size)


def test_a_robomimic_demo_that_does_not_decompress_leaves_no_store(tmp_path):
    dataset, out = R.write(tmp_path / "image.hdf5"), tmp_path / "demos.zarr"
    _corrupt_demo_10(dataset)
    with pytest.raises(RobomimicImportError, match=r"image.hdf5: data/demo_10 cannot be read \(.*\); the file is damaged "
                                                   r"\(download or extract it again\); nothing was written"):
        import_robomimic(dataset, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["image.hdf5"]
    before = _existing_store(out)
    with pytest.raises(RobomimicImportError, match="data/demo_10 cannot be read"):
        import_robomimic(dataset, out, overwrite=True)
    assert _tree(out) == before and sorted(p.name for p in tmp_path.iterdir()) == ["demos.zarr", "image.hdf5"]


def _interrupted_on_second_episode(monkeypatch) -> None:
    append = EpisodeStore.append_episode

    def append_then_interrupt(self, *args, **kwargs):
        if self.n_episodes == 1:
            raise KeyboardInterrupt
        return append(self, *args, **kwargs)

    monkeypatch.setattr(EpisodeStore, "append_episode", append_then_interrupt)


@pytest.mark.parametrize("which", ["lerobot", "robomimic"])
def test_ctrl_c_half_way_leaves_nothing_a_later_run_would_read_as_a_store(tmp_path, monkeypatch, which):
    source = L.write_v21(tmp_path / "pusht") if which == "lerobot" else R.write(tmp_path / "low_dim.hdf5")
    run = import_lerobot if which == "lerobot" else import_robomimic
    out = tmp_path / "demos.zarr"
    before = _existing_store(tmp_path / "kept.zarr")
    with monkeypatch.context() as patch:
        _interrupted_on_second_episode(patch)
        with pytest.raises(KeyboardInterrupt):
            run(source, out)
        with pytest.raises(KeyboardInterrupt):
            run(source, tmp_path / "kept.zarr", overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.zarr", source.name]
    assert _tree(tmp_path / "kept.zarr") == before
    assert run(source, out).n_episodes == 3  # the rerun writes the whole store


def test_an_import_killed_outright_leaves_the_old_store_and_only_a_hidden_partial_folder(tmp_path):
    import os
    import subprocess
    import sys
    import textwrap

    from fiper.evaluation.rollouts import expand_stores

    dataset, out = R.write(tmp_path / "low_dim.hdf5"), tmp_path / "demos.zarr"
    before = _existing_store(out)
    child = textwrap.dedent("""
        import os, signal, sys
        from fiper.storage import EpisodeStore
        from fiper.storage.robomimic_import import import_robomimic

        append = EpisodeStore.append_episode

        def append_then_die(self, *args, **kwargs):
            if self.n_episodes == 1:
                os.kill(os.getpid(), signal.SIGKILL)
            return append(self, *args, **kwargs)

        EpisodeStore.append_episode = append_then_die
        import_robomimic(sys.argv[1], sys.argv[2], overwrite=True)
    """)
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "-c", child, str(dataset), str(out)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(repo), "MUJOCO_GL": "disable"})
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert _tree(out) == before  # the store at out, unchanged
    left = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert len(left) == 1 and left[0].startswith(".demos.zarr.partial-")
    assert expand_stores(str(tmp_path)) == [out.resolve()] and list(tmp_path.glob("*.zarr")) == [out]  # not listed as a store
    assert import_robomimic(dataset, out, overwrite=True).n_episodes == 3
