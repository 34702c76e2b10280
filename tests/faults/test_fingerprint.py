"""Rollout stores keyed on what produced them: a sweep appends only to a store of the same fingerprint
(policy weights, monitor, env with its shifts, sampling settings), and a run that records nothing leaves no store."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from fiper.fingerprint import FingerprintMismatch, differences, directory_digest, make_fingerprint
from fiper.storage import EpisodeStore
from launch import calibrate, collect, fit, stress

REPO = Path(__file__).resolve().parents[2]
CONF = str(REPO / "launch" / "conf")
POLICY = REPO / "launch" / "checkpoints" / "pick_place_diffusion_mlp"
SHORT = ["env=pick_place", "+env.kwargs.max_episode_steps=12", f"policy_dir={POLICY}", "num_samples=2", "device=cpu",
         "cells=[[none,[0.0]]]", "seeds.start=0", "progress=false"]


def _run(module, name: str, overrides: list[str]):
    with initialize_config_dir(config_dir=CONF, version_base=None):
        return module.run(compose(config_name=name, overrides=overrides))


def test_fingerprint_ignores_key_order_and_names_what_changed():
    a = make_fingerprint({"env": {"name": "pick_place", "shifts": [["obstacle", 0.5]]}, "sampling": {"num_samples": 16}})
    b = make_fingerprint({"sampling": {"num_samples": 16}, "env": {"shifts": [("obstacle", 0.5)], "name": "pick_place"}})
    assert a["digest"] == b["digest"] and differences(a, b) == []
    c = make_fingerprint({"env": {"name": "pick_place", "shifts": []}, "sampling": {"num_samples": 8}})
    assert differences(a, c) == ['env.shifts: [["obstacle",0.5]] -> []', "sampling.num_samples: 16 -> 8"]
    assert differences(a, make_fingerprint({"env": {"name": "pick_place"}})) == [
        'env.shifts: [["obstacle",0.5]] -> (absent)', "sampling.num_samples: 16 -> (absent)"]


def test_directory_digest_follows_the_weights_not_the_logs_beside_them(tmp_path):
    copy = tmp_path / "policy"
    shutil.copytree(POLICY, copy)
    digest = directory_digest(copy)
    assert digest == directory_digest(POLICY)
    (copy / "train.log").write_text("a log line")
    (copy / ".hydra").mkdir()
    assert directory_digest(copy) == digest
    weights = bytearray((copy / "model.safetensors").read_bytes())
    weights[-1] ^= 1  # one bit of one weight
    (copy / "model.safetensors").write_bytes(bytes(weights))
    assert directory_digest(copy) != digest
    with pytest.raises(FileNotFoundError, match="not a directory"):
        directory_digest(tmp_path / "missing")


def test_sweep_resumes_only_into_a_store_of_the_same_fingerprint(tmp_path):
    out = tmp_path / "rollouts.zarr"
    _run(stress, "stress", [*SHORT, f"out={out}", "seeds.count=1"])
    _run(stress, "stress", [*SHORT, f"out={out}", "seeds.count=2"])  # same fingerprint: resumes, adds seed 1
    store = EpisodeStore.open(out)
    assert store.n_episodes == 2 and store.meta("seed").tolist() == [0, 1]
    recorded = store.attrs["fingerprint"]
    assert recorded["values"]["sampling.execute"] == "first" and recorded["values"]["policy"] == directory_digest(POLICY)
    with pytest.raises(FingerprintMismatch, match=r'sampling\.execute: "first" -> "medoid".*out=<new path>.*overwrite=true'):
        _run(stress, "stress", [*SHORT, f"out={out}", "seeds.count=3", "execute=medoid"])
    with pytest.raises(FingerprintMismatch, match=r'env\.shifts: \[\] -> \[\["obstacle",0\.5\]\]'):
        _run(stress, "stress", [*SHORT, f"out={out}", "seeds.count=3", "env.shifts=[[obstacle,0.5]]"])
    assert EpisodeStore.open(out).n_episodes == 2  # nothing was appended by the refused runs
    _run(stress, "stress", [*SHORT, f"out={out}", "seeds.count=1", "execute=medoid", "overwrite=true"])
    replaced = EpisodeStore.open(out)
    assert replaced.n_episodes == 1 and replaced.attrs["fingerprint"]["values"]["sampling.execute"] == "medoid"


def test_sweep_refuses_a_store_recorded_without_the_monitor(tmp_path):
    """Rerunning into the same store with a monitor_dir it was not recorded with is refused, naming 'monitor'."""
    demos, held_out = tmp_path / "demos.zarr", tmp_path / "calibration.zarr"
    monitor, out = tmp_path / "monitor", tmp_path / "rollouts.zarr"
    _run(collect, "collect", ["env=pick_place", "n_episodes=1", f"out={demos}", "progress=false"])
    _run(collect, "collect", ["env=pick_place", "n_episodes=1", f"out={held_out}", "seed=50", "progress=false"])
    small = ["++monitor.scores.rnd_oe.target_widths=[16]", "++monitor.scores.rnd_oe.predictor_widths=[32,32]",
             "++monitor.scores.rnd_oe.out_dim=8", "++monitor.scores.rnd_oe.train={max_epochs: 2}", "++monitor.scores.ace.dims=[0,1]"]
    _run(fit, "fit", [f"data={demos}", f"policy_dir={POLICY}", "num_samples=2", f"out={monitor}", *small])
    _run(calibrate, "calibrate", [f"data={held_out}", f"policy_dir={POLICY}", f"monitor_dir={monitor}", "delta=0.5", "threshold_type=constant"])
    _run(stress, "stress", [*SHORT, f"out={out}", "seeds.count=1"])
    with pytest.raises(FingerprintMismatch, match=r"monitor: null -> sha256:[0-9a-f]{12}"):
        _run(stress, "stress", [*SHORT, f"out={out}", "seeds.count=2", f"monitor_dir={monitor}"])
    assert EpisodeStore.open(out).n_episodes == 1


def test_a_run_that_records_nothing_leaves_no_store_and_an_empty_store_takes_the_new_runs_labels(tmp_path):
    out = tmp_path / "rollouts.zarr"
    with pytest.raises(ValueError, match=r"does not emit: 'agent_pos' \(4,\) \(env: \(2,\)\).*policy trained on this env"):
        _run(stress, "stress", [*[o for o in SHORT if not o.startswith(("env=", "+env"))], "env=push_t", f"out={out}", "seeds.count=1"])
    assert not out.exists()
    EpisodeStore.create(out, attrs={"task": "push_t"})  # left by some earlier failed run, no episodes
    _run(stress, "stress", [*SHORT, f"out={out}", "seeds.count=1"])
    store = EpisodeStore.open(out)
    assert store.n_episodes == 1 and store.attrs["task"] == "pick_place"


def test_a_store_without_a_fingerprint_is_not_appended_to(tmp_path):
    out = tmp_path / "legacy.zarr"
    legacy = EpisodeStore.create(out, attrs={"task": "pick_place"})
    legacy.append_episode({"action": np.zeros((3, 4), np.float32)}, meta={"seed": 5})
    with pytest.raises(FingerprintMismatch, match="records no fingerprint.*out=<new path>"):
        _run(stress, "stress", [*SHORT, f"out={out}", "seeds.count=1"])
    assert EpisodeStore.open(out).n_episodes == 1


def test_a_store_simulated_with_another_mujoco_release_is_not_appended_to(tmp_path):
    """The stores record the software their episodes came from; a resumed sweep under another MuJoCo release is
    refused (contacts can differ for the same seed and actions), and the store's episodes are kept."""
    import mujoco

    from fiper.control import RolloutRecorder

    out = tmp_path / "rollouts.zarr"
    _run(stress, "stress", [*SHORT, f"out={out}", "seeds.count=1"])
    store = EpisodeStore.open(out, mode="a")
    assert store.attrs["software"]["mujoco"] == mujoco.__version__ and "torch" in store.attrs["software"]
    store.set_attrs(software={**store.attrs["software"], "mujoco": "3.2.0"})
    with pytest.raises(FingerprintMismatch, match=rf"simulated with mujoco 3.2.0 and this run has mujoco {mujoco.__version__}.*"
                                                  r"install mujoco==3.2.0 to finish it"):
        _run(stress, "stress", [*SHORT, f"out={out}", "seeds.count=2"])
    assert EpisodeStore.open(out).n_episodes == 1
    assert RolloutRecorder(tmp_path / "new.zarr").attrs["software"]["mujoco"] == mujoco.__version__


def test_a_stores_fingerprint_follows_the_code_of_ones_own_its_settings_name_and_only_then(tmp_path, monkeypatch):
    from omegaconf import OmegaConf

    monkeypatch.chdir(tmp_path)
    Path("my_env.py").write_text("def make(**kw):\n    return None\n")
    base = {"policy_dir": None, "policy_factory": "m:f", "monitor_dir": None, "factories": {}, "execute": "first",
            "context": {}, "record_keys": None}
    own = OmegaConf.create({**base, "env": {"factory": "my_env.py:make"}})
    shipped = OmegaConf.create({**base, "env": {"name": "pick_place"}})
    first = stress.store_fingerprint(own, 16)
    assert set(first["values"]["sources.my_env.py"]) <= set("0123456789abcdef") and len(first["values"]["sources.my_env.py"]) == 64
    assert not any(k.startswith("sources") for k in stress.store_fingerprint(shipped, 16)["values"])  # as earlier stores hold
    assert stress.store_fingerprint(own, 16)["digest"] == first["digest"]
    Path("my_env.py").write_text("def make(**kw):\n    return 1\n")  # an edited env: its earlier episodes are another env's
    assert differences(first, stress.store_fingerprint(own, 16))[0].startswith("sources.my_env.py: sha256:")
