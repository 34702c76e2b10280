"""A LeRobotDataset (codebase v3.0 and v2.1, AV1 camera videos) becomes a fiper demonstration store: every frame in
its episode, in order, under the keys the user names; a policy trains on it; a dataset fiper cannot read as it is
names what is wrong."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

import lerobot_datasets as L
from imported_training import train_tiny
from fiper.storage import EpisodeStore
from fiper.storage.lerobot_import import LeRobotImportError, import_lerobot

pytest.importorskip("pyarrow")
CONF = str(Path(__file__).resolve().parents[2] / "launch" / "conf")


@pytest.mark.parametrize("write", [L.write_v30, L.write_v21])
def test_every_frame_lands_in_its_episode_in_order(tmp_path, write):
    write(tmp_path / "pusht")
    store = import_lerobot(tmp_path / "pusht", tmp_path / "demos.zarr", keys={"observation.state": "agent_pos",
                                                                              "observation.image": "pixels"})
    assert store.data_keys == ["action", "agent_pos", "environment_state", "pixels"]
    assert store.episode_lengths.tolist() == list(L.LENGTHS)
    assert store.meta("success").tolist() == [True, False, True]  # next.success, any frame of the episode
    assert store.attrs["task"] == "pusht" and store.attrs["control_period_s"] == pytest.approx(0.1)
    for e, length in enumerate(L.LENGTHS):
        ep = store.episode(e)
        np.testing.assert_array_equal(ep["agent_pos"], [[e, k] for k in range(length)])
        np.testing.assert_array_equal(ep["action"], ep["agent_pos"] + 0.5)
        assert ep["environment_state"].shape == (length, 4) and ep["pixels"].dtype == np.uint8
        assert ep["pixels"].shape == (length, L.SIDE, L.SIDE, 3)
        brightness = ep["pixels"].reshape(length, -1).mean(1)
        np.testing.assert_allclose(brightness, [L.shade(k) for k in range(length)], atol=4)  # AV1 is lossy, not misaligned


@pytest.mark.parametrize("write", [L.write_v30, L.write_v21])
def test_two_cameras_of_different_sizes_and_files_each_keep_their_frames(tmp_path, write):
    """A front camera (32 x 32) and a wrist camera (16 x 24) whose videos are split into other files: each becomes its
    own key, every frame in its episode, in order."""
    L.add_wrist_camera(write(tmp_path / "two_cameras"))
    store = import_lerobot(tmp_path / "two_cameras", tmp_path / "demos.zarr", keys={"observation.image": "front"})
    assert store.data_keys == ["action", "environment_state", "front", "images.wrist", "state"]
    for e, length in enumerate(L.LENGTHS):
        ep = store.episode(e)
        assert ep["front"].shape == (length, L.SIDE, L.SIDE, 3) and ep["images.wrist"].shape == (length, *L.WRIST, 3)
        shades = np.array([L.shade(k) for k in range(length)])
        np.testing.assert_allclose(ep["front"].reshape(length, -1).mean(1), shades, atol=4)
        np.testing.assert_allclose(ep["images.wrist"].reshape(length, -1).mean(1), 255 - shades, atol=4)


def test_a_policy_trains_on_the_imported_store(tmp_path):
    L.write_v30(tmp_path / "pusht")
    import_lerobot(tmp_path / "pusht", tmp_path / "demos.zarr", keys={"observation.state": "agent_pos"})
    keys = ["agent_pos", "environment_state"]
    assert train_tiny(tmp_path / "demos.zarr", keys, tmp_path / "policy") == keys


def test_the_command_line_maps_dotted_feature_names(tmp_path, capsys):
    from launch import import_lerobot as entry

    L.write_v21(tmp_path / "pusht")
    with initialize_config_dir(config_dir=CONF, version_base=None):
        cfg = compose("import_lerobot", [f"dataset={tmp_path / 'pusht'}", f"out={tmp_path / 'demos.zarr'}",
                                         "keys={observation.state: agent_pos}", "max_episodes=2", "task=pusht_lerobot"])
        entry.run(cfg)
    store = EpisodeStore.open(tmp_path / "demos.zarr")
    assert store.n_episodes == 2 and "agent_pos" in store.data_keys and store.attrs["task"] == "pusht_lerobot"
    assert "imported 2 episodes (12 steps, 0.1 s each)" in capsys.readouterr().out


def test_what_cannot_be_read_is_named(tmp_path):
    with pytest.raises(LeRobotImportError, match="holds no meta/info.json, so it is not a LeRobotDataset"):
        import_lerobot(tmp_path, tmp_path / "a.zarr")
    root = L.write_v30(tmp_path / "pusht")
    with pytest.raises(LeRobotImportError, match=r"keys names \['observation.wrist'\], which the dataset has no feature of"):
        import_lerobot(root, tmp_path / "b.zarr", keys={"observation.wrist": "wrist"})
    with pytest.raises(LeRobotImportError, match=r"would all be stored as \['agent_pos'\].*keys=\{feature: key\}"):
        import_lerobot(root, tmp_path / "c.zarr", keys={"observation.state": "agent_pos", "observation.environment_state": "agent_pos"})
    info = json.loads((root / "meta" / "info.json").read_text())
    (root / "meta" / "info.json").write_text(json.dumps({**info, "codebase_version": "v1.6"}))
    with pytest.raises(LeRobotImportError, match=r"codebase_version 'v1.6' is not one fiper reads.*conversion script"):
        import_lerobot(root, tmp_path / "d.zarr")
    (root / "meta" / "info.json").write_text(json.dumps(info))
    video = root / "videos" / "observation.image" / "chunk-000" / "file-001.mp4"
    L._write_video(video, L.episode_frames(4))  # episode 2 needs 9 frames
    with pytest.raises(LeRobotImportError, match=r"file-001.mp4 ends after 4 of episode 2's 9 frames"):
        import_lerobot(root, tmp_path / "e.zarr")


def _set_info(root: Path, **changes) -> None:
    info = json.loads((root / "meta" / "info.json").read_text())
    (root / "meta" / "info.json").write_text(json.dumps({k: v for k, v in {**info, **changes}.items() if v is not None}))


@pytest.mark.parametrize(("fps", "named"), [
    (0, r"fps in .*info.json = 0 is not a positive number of steps per second"),
    (None, r"fps in .*info.json = None is not a positive number of steps per second"),
    (5000, r"1 / fps in .*info.json = 0.0002 s per env step lies outside the plausible control periods 0.0005 .. 10 s"),
    (0.05, r"1 / fps in .*info.json = 20 s per env step lies outside the plausible control periods"),
])
def test_an_implausible_fps_is_refused_naming_the_setting_and_no_store_is_written(tmp_path, fps, named):
    root = L.write_v30(tmp_path / "pusht")
    _set_info(root, fps=fps)
    out = tmp_path / "demos.zarr"
    with pytest.raises(LeRobotImportError, match=rf"{named}.*pass control_period_s=<seconds per step>"):
        import_lerobot(root, out)
    assert not out.exists()
    store = import_lerobot(root, out, keys={"observation.image": "pixels"}, control_period_s=0.1)  # the real period, stated
    assert store.attrs["control_period_s"] == 0.1 and store.attrs["lerobot"]["fps"] == fps
    for e, length in enumerate(L.LENGTHS):  # video frames located at 10 per second: each episode's own
        brightness = store.episode(e)["pixels"].reshape(length, -1).mean(1)
        np.testing.assert_allclose(brightness, [L.shade(k) for k in range(length)], atol=4)


def test_a_stated_period_in_another_unit_or_contradicting_fps_is_refused(tmp_path):
    from launch import import_lerobot as entry
    from launch.validate import ConfigError

    root, out = L.write_v21(tmp_path / "pusht"), tmp_path / "demos.zarr"
    with pytest.raises(LeRobotImportError, match=r"control_period_s = 100 s per env step lies outside .*e\.g\. 0\.1 for 10 Hz"):
        import_lerobot(root, out, control_period_s=100)
    with pytest.raises(LeRobotImportError, match=r"control_period_s=0.05 contradicts the dataset.s fps in .* = 10 Hz \(0.1 s per step\)"):
        import_lerobot(root, out, control_period_s=0.05)
    with initialize_config_dir(config_dir=CONF, version_base=None):
        cfg = compose("import_lerobot", [f"dataset={root}", f"out={out}", "control_period_s=100"])
    with pytest.raises(ConfigError, match=r"control_period_s=100: expected seconds per env step in \[0.0005, 10\]"):
        entry.run(cfg)
    assert not out.exists()


def _add_float64_feature(root: Path) -> None:
    """observation.position, float64 (2,): 1e5 + 1e-3 * frame and -2e5 + 1e-3 * episode, in every data file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    for path in sorted((root / "data").rglob("*.parquet")):
        table = pq.read_table(path)
        k, e = table.column("frame_index").to_numpy(), table.column("episode_index").to_numpy()
        position = np.stack([1e5 + 1e-3 * k, -2e5 + 1e-3 * e], axis=1)
        pq.write_table(table.append_column("observation.position", pa.array(list(position), type=pa.list_(pa.float64()))), path)
    info = json.loads((root / "meta" / "info.json").read_text())
    info["features"]["observation.position"] = {"dtype": "float64", "shape": [2], "names": None}
    (root / "meta" / "info.json").write_text(json.dumps(info))


@pytest.mark.parametrize("write", [L.write_v30, L.write_v21])
def test_a_float64_feature_with_a_large_offset_is_stored_exactly(tmp_path, write):
    root = write(tmp_path / "pusht")
    _add_float64_feature(root)
    store = import_lerobot(root, tmp_path / "demos.zarr", keys={"observation.state": "agent_pos"})
    assert store.data_array("position").dtype == np.float64 and store.data_array("agent_pos").dtype == np.float32
    for e, length in enumerate(L.LENGTHS):
        got = store.episode(e)["position"]
        want = np.stack([1e5 + 1e-3 * np.arange(length), np.full(length, -2e5 + 1e-3 * e)], axis=1)
        np.testing.assert_array_equal(got, want)  # float32 would round 1e5 + 1e-3 k to steps of 1/128
        np.testing.assert_allclose(np.diff(got[:, 0]), 1e-3, rtol=0, atol=1e-9)
    if write is L.write_v30:
        keys = ["agent_pos", "position"]
        assert train_tiny(tmp_path / "demos.zarr", keys, tmp_path / "policy") == keys


def test_a_column_stored_wider_than_info_declares_keeps_what_it_holds(tmp_path):
    """observation.position declared float32 but stored float64: stored float64, exactly; a float32 column stays float32."""
    root = L.write_v21(tmp_path / "pusht")
    _add_float64_feature(root)
    _set_info(root, features={**json.loads((root / "meta" / "info.json").read_text())["features"],
                              "observation.position": {"dtype": "float32", "shape": [2], "names": None}})
    store = import_lerobot(root, tmp_path / "demos.zarr")
    assert store.data_array("position").dtype == np.float64 and store.data_array("state").dtype == np.float32
    for e, length in enumerate(L.LENGTHS):
        want = np.stack([1e5 + 1e-3 * np.arange(length), np.full(length, -2e5 + 1e-3 * e)], axis=1)
        np.testing.assert_array_equal(store.episode(e)["position"], want)
