"""A robomimic HDF5 dataset imports as a demonstration store: every row in its demo, demos in robomimic's order, under
the keys the user names, the control period from the env's arguments; a policy trains on it; what fiper cannot read
as it is stops the import before a store is written, naming the problem and the fix."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

pytest.importorskip("h5py")
import robomimic_datasets as R  # noqa: E402
from imported_training import train_tiny  # noqa: E402
from fiper.storage import EpisodeStore  # noqa: E402
from fiper.storage.robomimic_import import RobomimicImportError, import_robomimic  # noqa: E402

CONF = str(Path(__file__).resolve().parents[2] / "launch" / "conf")


def test_every_row_lands_in_its_demo_in_robomimic_order(tmp_path):
    dataset = R.write(tmp_path / "low_dim.hdf5")
    store = import_robomimic(dataset, tmp_path / "demos.zarr", keys={"robot0_eef_pos": "agent_pos"})
    assert store.n_episodes == 3 and list(store.episode_lengths) == [5, 7, 6]  # demo_0, demo_2, demo_10
    assert sorted(store.data_keys) == ["action", "agent_pos", "agentview_image", "object"]
    assert store.attrs["control_period_s"] == pytest.approx(0.05) and store.attrs["task"] == "Lift"
    for episode, demo in enumerate([0, 2, 10]):
        ep = store.episode(episode)
        n = R.LENGTHS[demo]
        np.testing.assert_array_equal(ep["agent_pos"], R.eef(demo, n))  # obs, not next_obs
        np.testing.assert_allclose(ep["action"][:, 0], 0.1 * demo, rtol=1e-6)
        assert ep["action"].dtype == np.float64 and ep["action"].shape == (n, 7)  # as the dataset stores it
        assert ep["agentview_image"].dtype == np.uint8 and ep["agentview_image"].shape == (n, R.SIDE, R.SIDE, 3)
        np.testing.assert_array_equal(ep["agentview_image"][:, 0, 0, 0], 10 * np.arange(n))


def test_a_filter_key_the_observations_chosen_and_another_action_dataset(tmp_path):
    dataset = R.write(tmp_path / "low_dim.hdf5")
    store = import_robomimic(dataset, tmp_path / "train.zarr", filter_key="train", obs=["robot0_eef_pos"], action="actions_abs")
    assert list(store.episode_lengths) == [5, 6] and sorted(store.data_keys) == ["action", "robot0_eef_pos"]
    np.testing.assert_allclose(store.episode(1)["action"], R.eef(10, 6) + 0.5, rtol=1e-6)
    assert store.attrs["robomimic"]["filter_key"] == "train" and store.attrs["robomimic"]["action"] == "actions_abs"


def test_the_parts_of_robomimics_action_dict_placed_side_by_side(tmp_path):
    """robomimic 0.4 and later also write each action's parts under action_dict/: a list of them is one action."""
    dataset = R.write(tmp_path / "low_dim.hdf5")
    store = import_robomimic(dataset, tmp_path / "parts.zarr", action=["action_dict/rel_pos", "action_dict/gripper"])
    np.testing.assert_allclose(store.episode(2)["action"], np.tile([1.0, 0.0, -0.1, 1.0], (6, 1)), rtol=1e-6)  # demo_10
    assert store.attrs["robomimic"]["action"] == ["action_dict/rel_pos", "action_dict/gripper"]


def test_a_policy_trains_on_the_imported_store(tmp_path):
    keys = ["object", "robot0_eef_pos"]
    import_robomimic(R.write(tmp_path / "low_dim.hdf5"), tmp_path / "demos.zarr", obs=keys)
    assert train_tiny(tmp_path / "demos.zarr", keys, tmp_path / "policy") == keys


def test_the_command_line_imports_with_its_options(tmp_path, capsys):
    from launch import import_robomimic as entry

    dataset = R.write(tmp_path / "image.hdf5")
    with initialize_config_dir(config_dir=CONF, version_base=None):
        cfg = compose("import_robomimic", [f"dataset={dataset}", f"out={tmp_path / 'demos.zarr'}", "keys={object: cube}",
                                           "obs=[object,robot0_eef_pos]", "max_episodes=2", "task=lift_ph",
                                           "action=[action_dict/rel_pos,action_dict/gripper]"])
        entry.run(cfg)
    store = EpisodeStore.open(tmp_path / "demos.zarr")
    assert store.n_episodes == 2 and sorted(store.data_keys) == ["action", "cube", "robot0_eef_pos"]
    assert store.episode(0)["action"].shape == (5, 4)
    assert store.attrs["task"] == "lift_ph"
    assert "imported 2 demos (12 steps, 0.05 s each)" in capsys.readouterr().out


def test_what_cannot_be_read_is_named_and_no_store_is_written(tmp_path):
    out = tmp_path / "out.zarr"
    (tmp_path / "notes.hdf5").write_text("not hdf5")
    with pytest.raises(RobomimicImportError, match="is not an HDF5 file h5py can open"):
        import_robomimic(tmp_path / "notes.hdf5", out)
    raw = R.write(tmp_path / "raw" / "demo.hdf5", with_obs=False)
    with pytest.raises(RobomimicImportError, match="holds no observations.*dataset_states_to_obs.py"):
        import_robomimic(raw, out)
    dataset = R.write(tmp_path / "low_dim.hdf5")
    cases = [({"filter_key": "20_percent"}, r"no filter key '20_percent' \(it has \['train', 'valid'\]\)"),
             ({"obs": ["robot0_eef_quat"]}, r"obs names \['robot0_eef_quat'\], which the dataset does not observe"),
             ({"keys": {"robot0_eef_quat": "q"}}, r"keys names \['robot0_eef_quat'\], which the dataset has no observation key of"),
             ({"keys": {"object": "action"}}, r"would all be stored as \['action'\].*keys=\{observation key: key\}"),
             ({"keys": {"object": "pos", "robot0_eef_pos": "pos"}}, r"would all be stored as \['pos'\]"),
             ({"action": "action_dict/abs_pos"}, r"holds no 'action_dict/abs_pos' dataset \(it has \['action_dict', 'actions', 'actions_abs'"),
             ({"action": "action_dict"}, r"data/demo_0/action_dict is a group of datasets \['gripper', 'rel_pos'\], not an action "
                                         r"dataset; give one of them, action=action_dict/gripper, or a list to place side by side"),
             ({"action": []}, r"action=\[\] names no action dataset"),
             ({"control_period_s": 0.1}, r"control_period_s=0.1 contradicts the dataset's env_kwargs.control_freq in .* = 20 Hz")]
    for kwargs, message in cases:
        with pytest.raises(RobomimicImportError, match=message):
            import_robomimic(dataset, out, **kwargs)
    import h5py

    with h5py.File(dataset, "a") as f:
        del f["data/demo_2/obs/object"]
        f["data/demo_2/obs/object"] = np.zeros((3, 10))
    with pytest.raises(RobomimicImportError, match=r"in data/demo_2, \{'obs/object': 3\} rows against 'actions''s 7; the demo is damaged"):
        import_robomimic(dataset, out)
    assert not out.exists()


def _with_control_freq(path: Path, freq) -> Path:
    import json

    import h5py

    dataset = R.write(path)
    with h5py.File(dataset, "a") as f:
        f["data"].attrs["env_args"] = json.dumps({**R.ENV_ARGS, "env_kwargs": {**R.ENV_ARGS["env_kwargs"], "control_freq": freq}})
    return dataset


@pytest.mark.parametrize(("freq", "named"), [
    (0, r"env_kwargs.control_freq in .*low_dim.hdf5 = 0 is not a positive number of steps per second"),
    (20000, r"1 / env_kwargs.control_freq in .*low_dim.hdf5 = 5e-05 s per env step lies outside the plausible control periods"),
])
def test_an_implausible_control_freq_is_refused_naming_the_setting_and_no_store_is_written(tmp_path, freq, named):
    dataset, out = _with_control_freq(tmp_path / "low_dim.hdf5", freq), tmp_path / "out.zarr"
    with pytest.raises(RobomimicImportError, match=rf"{named}.*pass control_period_s=<seconds per step>"):
        import_robomimic(dataset, out)
    assert not out.exists()
    assert import_robomimic(dataset, out, control_period_s=0.05).attrs["control_period_s"] == 0.05  # the real period, stated


def test_a_period_given_in_milliseconds_is_refused_before_a_store_is_written(tmp_path):
    from launch import import_robomimic as entry
    from launch.validate import ConfigError

    dataset, out = R.write(tmp_path / "low_dim.hdf5"), tmp_path / "out.zarr"
    with pytest.raises(RobomimicImportError, match=r"control_period_s = 50 s per env step lies outside .*e\.g\. 0\.1 for 10 Hz"):
        import_robomimic(dataset, out, control_period_s=50)
    with initialize_config_dir(config_dir=CONF, version_base=None):
        cfg = compose("import_robomimic", [f"dataset={dataset}", f"out={out}", "control_period_s=50"])
    with pytest.raises(ConfigError, match=r"control_period_s=50: expected seconds per env step in \[0.0005, 10\]"):
        entry.run(cfg)
    assert not out.exists()


def test_float64_actions_with_a_large_offset_are_stored_exactly(tmp_path):
    """Absolute actions 1e5 + 1e-3 t (float64 in the file) keep their millimetres; a float32 dataset stays float32."""
    import h5py

    dataset = R.write(tmp_path / "low_dim.hdf5")
    with h5py.File(dataset, "a") as f:
        for demo, n in R.LENGTHS.items():
            group = f[f"data/demo_{demo}"]
            del group["actions_abs"], group["actions"]
            group["actions_abs"] = np.stack([1e5 + 1e-3 * np.arange(n), np.full(n, -2e5 + 1e-3 * demo)], axis=1)
            group["actions"] = np.full((n, 7), 0.1 * demo, np.float32)
    store = import_robomimic(dataset, tmp_path / "abs.zarr", action="actions_abs")
    assert store.data_array("action").dtype == np.float64
    for episode, demo in enumerate([0, 2, 10]):
        n = R.LENGTHS[demo]
        got = store.episode(episode)["action"]
        np.testing.assert_array_equal(got, np.stack([1e5 + 1e-3 * np.arange(n), np.full(n, -2e5 + 1e-3 * demo)], axis=1))
        np.testing.assert_allclose(np.diff(got[:, 0]), 1e-3, rtol=0, atol=1e-9)  # float32 would round to steps of 1/128
    relative = import_robomimic(dataset, tmp_path / "rel.zarr")
    assert relative.data_array("action").dtype == np.float32
    np.testing.assert_array_equal(relative.episode(1)["action"], np.full((7, 7), np.float32(0.2)))
    both = import_robomimic(dataset, tmp_path / "both.zarr", action=["actions_abs", "actions"])
    assert both.data_array("action").dtype == np.float64 and both.episode(2)["action"][0, 0] == 1e5
