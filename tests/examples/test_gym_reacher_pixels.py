"""gymnasium's Reacher-v5 with camera images through the bring-your-own-env path, cheaply: the factories give (H, W, 3)
uint8 images, the flat example's expert succeeds on them, launch.collect stores the images, and the example's pipeline
config composes and passes the pipeline's up-front checks (the README records a real run)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from fiper.env_factory import default_offscreen_gl

default_offscreen_gl()  # before mujoco is imported, as the entry points do
pytest.importorskip("imageio", reason="gymnasium's MuJoCo envs import imageio (pip install 'fiper[image]')")
pytest.importorskip("mujoco")

from fiper.collection import run_episode  # noqa: E402
from fiper.storage import EpisodeStore  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # the example is imported as examples.gym_reacher_pixels, as from the repository root

from examples.gym_reacher.expert import ReachExpert  # noqa: E402
from examples.gym_reacher_pixels import envs as pixels  # noqa: E402


@pytest.fixture(scope="module")
def nominal():
    try:
        env = pixels.make_reacher_pixels(size=32)
        env.reset(seed=0)
    except Exception as err:  # no GL backend: mujoco raises its own types
        pytest.skip(f"cannot render Reacher-v5 offscreen here ({type(err).__name__}: {err})")
    return env


def test_the_factories_give_uint8_images_and_the_expert_reaches(nominal):
    obs, _ = nominal.reset(seed=3)
    assert set(obs) == {"state", "pixels"} and obs["pixels"].shape == (32, 32, 3) and obs["pixels"].dtype == np.uint8
    assert obs["pixels"].std() > 0  # the arena, not a blank frame
    episodes = [run_episode(nominal, ReachExpert(nominal), seed) for seed in range(5)]
    assert sum(e.success for e in episodes) >= 3
    shifted = pixels.ground_color(severity=1.0, size=32).reset(seed=3)[0]
    np.testing.assert_array_equal(shifted["state"], obs["state"])  # seen only in the image
    assert np.abs(shifted["pixels"].astype(int) - obs["pixels"]).mean() > 20
    np.testing.assert_array_equal(pixels.arm_start(severity=0.0, size=32).reset(seed=3)[0]["pixels"], obs["pixels"])
    with pytest.raises(ValueError, match=r"ground_color: severity must be a number in \[0, 1\]"):
        pixels.ground_color(severity=1.5)


def test_collect_and_the_pipeline_config(nominal, tmp_path):
    import launch.components  # noqa: F401  (stores the score and monitor groups, as launch.pipeline does on import)
    from launch.collect import run
    from launch.pipeline import validate_all

    conf = tmp_path / "conf"  # launch/conf with the example's conf over it: what --config-dir gives every stage
    shutil.copytree(ROOT / "launch" / "conf", conf)
    shutil.copytree(ROOT / "examples" / "gym_reacher_pixels" / "conf", conf, dirs_exist_ok=True)
    with initialize_config_dir(config_dir=str(ROOT / "launch" / "conf"), version_base=None):
        run(compose("collect", ["env.factory=examples.gym_reacher_pixels.envs:make_reacher_pixels", "env.name=null",
                                "env.obs_mode=null", "+env.kwargs.size=32", "expert=examples.gym_reacher.expert:ReachExpert",
                                "n_episodes=2", f"out={tmp_path / 'demos.zarr'}", "progress=false"]))
    store = EpisodeStore.open(tmp_path / "demos.zarr")
    assert store.data_keys == ["action", "pixels", "state"] and store.attrs["task"] == "Reacher-v5"
    assert store.read_data("pixels").shape[1:] == (32, 32, 3) and store.attrs["control_period_s"] == pytest.approx(0.02)
    with initialize_config_dir(config_dir=str(conf), version_base=None):
        cfg = compose("pipeline_reacher_pixels", [f"run_dir={tmp_path / 'run'}"])
        assert cfg.train.policy == "diffusion_mlp_image" and cfg.train.checkpoint is None
        validate_all(cfg, tmp_path / "run")
        lowdim = compose("pipeline_reacher_pixels", [f"run_dir={tmp_path / 'run'}", "train.policy=diffusion_mlp"])
        with pytest.raises(ValueError, match=r"\['pixels'\] are \(H, W, 3\) images.*nothing has run yet"):
            validate_all(lowdim, tmp_path / "run")
        shipped_dims = compose("pipeline_reacher_pixels", [f"run_dir={tmp_path / 'run'}", "monitor.scores.ace.dims=[0,1,2]"])
        with pytest.raises(ValueError, match=r"2-d actions, but monitor.scores.ace.dims=\[0, 1, 2\].*nothing has run yet"):
            validate_all(shipped_dims, tmp_path / "run")
    assert not (tmp_path / "run").exists()
