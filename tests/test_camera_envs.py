"""A user's env with camera images: headless rendering works from the entry points (or its error names MUJOCO_GL), the
encoder and the keys must match before anything is collected, and large images come with a note on the training cost."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from fiper.env_factory import make_env_from_config
from launch.pipeline_checks import check_env
from policies.encoders import check_encoder_keys, large_image_note

ROOT = Path(__file__).resolve().parents[1]


class Camera(gym.Env):
    """A Dict observation of a 2-d state and a ``size`` x ``size`` RGB image, 0.05 s per step."""

    dt = 0.05

    def __init__(self, size: int = 8):
        self.observation_space = gym.spaces.Dict({"state": gym.spaces.Box(-1, 1, (2,)),
                                                  "pixels": gym.spaces.Box(0, 255, (size, size, 3), np.uint8)})
        self.action_space = gym.spaces.Box(-1, 1, (2,))

    def _obs(self):
        return {"state": np.zeros(2, np.float32), "pixels": np.zeros(self.observation_space["pixels"].shape, np.uint8)}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self._obs(), {}

    def step(self, action):
        return self._obs(), 0.0, False, False, {}


def make_camera(size: int = 8):
    return Camera(size)


def camera_resized(severity: float = 0.0, size: int = 8):
    """A shift that renders the camera at another size (1 + severity times the nominal side)."""
    return Camera(round(size * (1 + severity)))


def make_grey_camera(size: int = 16):
    """The camera seen in grey, (H, W) uint8: what an env that drops the channel axis emits."""
    return gym.wrappers.TransformObservation(Camera(size), lambda obs: {**obs, "pixels": obs["pixels"][..., 0]}, None)


def no_gl():
    raise RuntimeError("an OpenGL platform library has not been loaded into this process, this most likely means that a "
                       "valid OpenGL context has not been created before mjr_makeContext was called")


def test_the_entry_points_default_mujoco_gl_to_egl_without_a_display():
    code = ("import os, logging, launch; print(os.environ.get('MUJOCO_GL'), logging.getLogger('OpenGL.acceleratesupport').level, "
            "logging.getLogger('absl').level)")  # PyOpenGL's and dm_control's INFO lines silenced
    env = {k: v for k, v in os.environ.items() if k not in ("MUJOCO_GL", "DISPLAY")}
    run = lambda extra: subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**env, **extra}, capture_output=True,  # noqa: E731
                                       text=True, check=True).stdout.split()
    if sys.platform.startswith("linux"):
        assert run({}) == ["egl", "30", "30"]
    assert run({"MUJOCO_GL": "osmesa"})[0] == "osmesa"  # a backend the user chose is kept
    assert run({"DISPLAY": ":0"})[0] == "None"  # with a display mujoco's own default (glfw) stays


def test_an_opengl_error_while_building_the_env_names_mujoco_gl():
    with pytest.raises(RuntimeError) as caught:
        make_env_from_config({"factory": "test_camera_envs:no_gl"})
    notes = "\n".join(caught.value.__notes__)
    assert "env.factory=test_camera_envs:no_gl" in notes and "set MUJOCO_GL=egl" in notes and "MUJOCO_GL=osmesa" in notes


def test_the_encoder_must_read_the_keys_naming_the_image_policy_or_obs_keys():
    shapes = {"state": (10,), "pixels": (64, 64, 3)}
    with pytest.raises(ValueError, match=r"\['pixels'\] are \(H, W, 3\) images, which the low-dim encoder .*"
                                         r"train.policy=diffusion_mlp_image\), or leave them out with policy.obs_keys=\[state\]"):
        check_encoder_keys(shapes, "lowdim")
    with pytest.raises(ValueError, match=r"\['obs'\] are \(H, W, 3\) images.*train.policy=diffusion_mlp_image\)$"):
        check_encoder_keys({"obs": (64, 64, 3)}, "lowdim")  # render_only=True: the image alone, nothing to keep instead
    with pytest.raises(ValueError, match=r"encoder='image' needs an image.*policy=diffusion_mlp\).*AddRenderObservation"):
        check_encoder_keys({"state": (10,)}, "image")
    check_encoder_keys(shapes, "image")
    check_encoder_keys({"state": (10,)}, "lowdim")
    with pytest.raises(ValueError, match=r"image_downsample=3 must divide the sides of the images \{'pixels': \(64, 64\)\}"):
        check_encoder_keys(shapes, "image", downsample=3)
    from policies import PolicyConfig, build_policy

    with pytest.raises(ValueError, match="policy.obs_keys=\\[state\\]"):  # the policy itself refuses with the same words
        build_policy(PolicyConfig(denoiser="mlp"), shapes, 2)


def test_large_images_get_a_note_on_the_training_cost():
    assert large_image_note({"pixels": (64, 64, 3), "state": (10,)}) is None
    assert large_image_note({"pixels": (128, 96, 3)}) is None
    note = large_image_note({"pixels": (480, 480, 3), "state": (500,)})
    assert "'pixels' 480x480 px" in note and "width=64, height=64" in note and "policy.image_downsample" in note
    assert "state" not in note
    assert large_image_note({"pixels": (480, 480, 3)}, downsample=4) is None  # 120 px after pooling


def test_the_pipeline_checks_encoder_and_image_size_before_anything_runs(capsys):
    env = {"factory": "test_camera_envs:make_camera", "kwargs": {"size": 8}}
    lowdim = {"obs_keys": None, "encoder": "lowdim", "image_downsample": 1}
    with pytest.raises(ValueError, match=r"env 'Camera': observation keys \['pixels'\] are \(H, W, 3\) images.*nothing has run yet"):
        check_env(env, {}, lowdim)
    assert check_env(env, {}, {**lowdim, "obs_keys": ["state"]}) == 0.05  # the state only: nothing to refuse
    image = {"obs_keys": None, "encoder": "image", "image_downsample": 1}
    assert check_env(env, {}, image) == 0.05 and capsys.readouterr().out == ""
    check_env({**env, "kwargs": {"size": 256}}, {}, image)
    assert "[train] note: images 'pixels' 256x256 px" in capsys.readouterr().out
    check_env({**env, "kwargs": {"size": 256}}, {}, {**image, "image_downsample": 2})
    assert capsys.readouterr().out == ""
    from omegaconf import OmegaConf

    for device, said in (("cpu", True), ("cuda", False)):  # the note is about training on a CPU
        check_env({**env, "kwargs": {"size": 256}}, {}, image, OmegaConf.create({"device": device, "monitor": {}, "evaluate": {}}))
        assert ("[train] note: images" in capsys.readouterr().out) is said
    with pytest.raises(ValueError, match=r"env 'Camera': policy.image_downsample=3 must divide .*nothing has run yet"):
        check_env(env, {}, {**image, "image_downsample": 3})


def test_an_opengl_error_at_reset_or_step_names_mujoco_gl_too():
    from fiper.gym_api import reset_env, step_env

    class RendersLate(gym.Env):
        observation_space = gym.spaces.Box(-1, 1, (2,))
        action_space = gym.spaces.Box(-1, 1, (1,))

        def reset(self, *, seed=None, options=None):
            no_gl()

        def step(self, action):
            no_gl()

    for call in (lambda env: reset_env(env, 0), lambda env: step_env(env, np.zeros(1), 0, 0)):
        with pytest.raises(RuntimeError) as caught:
            call(RendersLate())
        assert "set MUJOCO_GL=egl" in "\n".join(caught.value.__notes__)


def test_a_grey_camera_is_refused_not_flattened_into_low_dim_features():
    """A 2-d uint8 image would pass as an (n, d) array: the low-dim encoder would read 256 pixel features and the image
    encoder would find no image; both are refused naming the conversion, and small uint8 arrays stay low-dim keys."""
    from policies.normalizer import check_obs_layout

    env = {"factory": "test_camera_envs:make_grey_camera"}
    for encoder in ("lowdim", "image"):
        with pytest.raises(ValueError, match=r"env 'Camera': observation 'pixels' has per-step shape \(16, 16\) of uint8: a grey "
                                             r"image.*repeat a grey channel three times.*nothing has run yet"):
            check_env(env, {}, {"obs_keys": None, "encoder": encoder, "image_downsample": 1})
    assert check_env(env, {}, {"obs_keys": ["state"], "encoder": "lowdim", "image_downsample": 1}) == 0.05
    check_obs_layout("counts", (4, 3), np.uint8)
    check_obs_layout("height_map", (16, 16), np.float32)


class OneBuffer(Camera):
    """A camera whose image is one buffer rewritten every step (a renderer's render(out=buf)), filled with the step."""

    def __init__(self, size: int = 8):
        super().__init__(size)
        self.buffer, self.t = np.zeros((size, size, 3), np.uint8), 0

    def _obs(self):
        self.buffer[...] = self.t
        return {"state": np.full(2, self.t, np.float32), "pixels": self.buffer}

    def reset(self, *, seed=None, options=None):
        self.t = 0
        return super().reset(seed=seed)

    def step(self, action):
        self.t += 1
        return self._obs(), 0.0, self.t >= 6, False, {}


def test_an_env_that_rewrites_one_image_buffer_keeps_every_frame(tmp_path):
    """Collection, the policy's observation history and the recorded rollout copy each step's image: kept as the env's
    buffer, every stored frame and both frames the policy sees would be the newest one."""
    import torch

    from fiper.collection import collect
    from fiper.control import MonitoredPolicy, run_episode
    from fiper.control.history import ObsHistory
    from fiper.storage import EpisodeStore
    from policies import PolicyConfig, build_policy

    class Still:
        def reset(self, seed=None):
            pass

        def act(self, obs, info):
            return np.zeros(2, np.float32)

    store = EpisodeStore.create(tmp_path / "demos.zarr")
    collect(OneBuffer(), Still(), store, 1, seed=0, progress=False)
    assert EpisodeStore.open(tmp_path / "demos.zarr").episode(0, ["pixels"])["pixels"][:, 0, 0, 0].tolist() == [0, 1, 2, 3, 4, 5]
    env, history = OneBuffer(), ObsHistory(["pixels"], 2)
    history.push(env.reset(seed=0)[0])
    history.push(env.step(np.zeros(2))[0])
    assert history.tensors(torch.device("cpu"))["pixels"][0, :, 0, 0, 0].tolist() == [0, 1]
    config = PolicyConfig(kind="flow", denoiser="mlp", encoder="image", horizon=4, n_action_steps=2, image_channels=[8],
                          image_keypoints=4, n_groups=4, mlp_hidden=32, mlp_layers=1, num_inference_steps=2)
    policy = build_policy(config, {"pixels": (8, 8, 3), "state": (2,)}, 2)
    result = run_episode(OneBuffer(), MonitoredPolicy(policy, None, num_samples=2), seed=0)
    assert result.steps["pixels"][:, 0, 0, 0].tolist() == [0, 1, 2, 3, 4, 5]


def test_two_cameras_of_different_sizes_share_one_downsample_and_none_is_pooled_blind():
    """A wrist and a front camera: image_downsample must suit both, and a factor (or a side) that would shrink one to
    a 1x1 keypoint map, whose keypoints are the same whatever it shows, is refused naming the factors that suit both."""
    import torch

    from policies.encoders import ImageTrunk, trunk_map, usable_downsamples

    shapes = {"state": (4,), "wrist": (32, 32, 3), "front": (48, 48, 3)}
    assert usable_downsamples({"wrist": (32, 32), "front": (48, 48)}, 2) == [1, 2, 4]
    assert usable_downsamples({"wrist": (32, 32), "front": (48, 48)}, None) == [1, 2, 4, 8, 16]
    assert trunk_map(32, 32, 8, 2) == (1, 1) and trunk_map(48, 48, 8, 2) == (2, 2)
    with pytest.raises(ValueError, match=r"image_downsample=3 must divide the sides of the images \{'wrist': \(32, 32\)\}: "
                                         r"choose one of \[1, 2, 4\], the factors dividing the sides of every image"):
        check_encoder_keys(shapes, "image", downsample=3, layers=2)
    with pytest.raises(ValueError, match=r"^images 'wrist' 32x32 is 4x4 after policy.image_downsample=8, which the image "
                                         r"trunk's 2 stride-2 convolutions .* 1x1 map.*would not see it\. Choose one of \[1, 2, 4\]"):
        check_encoder_keys(shapes, "image", downsample=8, layers=2)
    with pytest.raises(ValueError, match=r"'cam' 4x4 is 4x4 .* No factor suits every image .* at least 5 px"):
        check_encoder_keys({"cam": (4, 4, 3)}, "image", layers=2)
    check_encoder_keys(shapes, "image", downsample=4, layers=2)
    # the refused case is what it says: a 1x1 map gives every image the same keypoints, a 2x2 one does not
    torch.manual_seed(0)
    images = torch.rand(6, 32, 32, 3)
    blind, seeing = ImageTrunk((32, 32, 3), [8, 8], 4, 4, 16), ImageTrunk((32, 32, 3), [8, 8], 4, 4, 4)
    assert float(blind(images).std(0).max()) == 0.0 and float(seeing(images).std(0).max()) > 0.01
    from policies import PolicyConfig, build_policy

    with pytest.raises(ValueError, match=r"'wrist' 32x32 is 4x4 after policy.image_downsample=8"):
        build_policy(PolicyConfig(denoiser="mlp", encoder="image", image_downsample=8), shapes, 2)


def test_the_pipeline_refuses_a_shift_whose_camera_has_another_size_before_anything_runs():
    """A stress cell's env must give the nominal observation layout; a camera rendered at another size would be refused
    by the trained policy at the stress rollouts' first step, after collection and training."""
    from omegaconf import OmegaConf

    env, image = {"factory": "test_camera_envs:make_camera", "kwargs": {"size": 8}}, {"obs_keys": None, "encoder": "image"}
    factories = {"resized": "test_camera_envs:camera_resized"}
    pipeline = lambda cells: OmegaConf.create({"device": "cpu", "monitor": {}, "evaluate": {}, "rollouts": {"cells": cells}})  # noqa: E731
    with pytest.raises(ValueError, match=r"^rollouts.cells: the env of shift 'resized' at severity 1 gives the observation "
                                         r"'pixels' \(16, 16, 3\) where the nominal env's is \(8, 8, 3\).*rollouts.factories.resized"):
        check_env(env, factories, image, pipeline([["none", [0.0]], ["resized", [0.0, 1.0]]]))
    assert check_env(env, factories, image, pipeline([["none", [0.0]], ["resized", [0.0]]])) == 0.05  # same size at 0
    assert check_env(env, factories, {"obs_keys": ["state"], "encoder": "lowdim"}, pipeline([["resized", [1.0]]])) == 0.05  # unread
