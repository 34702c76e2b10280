"""An alarmed episode as a video: frames beside the score traces, the alarm shown from the step it is raised."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import envs
from fiper.control import MonitoredPolicy
from fiper.control.video import SIZE_PX, VideoNotWritten, check_video_writer, record_episode, write_video
from fiper.interventions import GradedResponse, HoldPosition
from loop_setup import MAX_STEPS, alarm_from, context
from loop_setup import setup as control_setup  # noqa: F401  (module fixture: policy dir + fitted monitor)

iio = pytest.importorskip("imageio.v3")


@pytest.fixture(scope="module")
def setup(control_setup):  # noqa: F811
    return control_setup


def red_pixels(frame: np.ndarray) -> int:
    r, g, b = (frame[..., i].astype(int) for i in range(3))
    return int(((r > 180) & (g < 80) & (b < 80)).sum())


@pytest.mark.parametrize("suffix", [".mp4", ".gif"])
def test_alarmed_episode_video_shows_frames_traces_and_the_alarm_as_it_happens(setup, tmp_path, suffix):
    if not envs.gl_status()[0]:
        pytest.skip(envs.gl_status()[1])
    _, policy, monitor = setup
    agent = MonitoredPolicy(policy, alarm_from(monitor, 2), num_samples=8, context=context(policy),
                            response=GradedResponse(fallback=HoldPosition()))
    env = envs.make_env("push_t", max_episode_steps=MAX_STEPS, render_mode="rgb_array", render_size=64,
                        terminate_on_success=False, terminate_on_failure=False)
    result, frames = record_episode(env, agent, seed=3)
    n_steps = len(result.steps["action"])
    assert len(frames) == n_steps + 1 and frames[0].shape == (64, 64, 3)
    alarm_step = next(d.env_step for d in result.decisions if d.verdict and d.verdict.alarm)
    assert alarm_step == 2 * policy.n_action_steps
    path = write_video(tmp_path / f"alarm{suffix}", frames, result.decisions, title="push_t, hold", control_period_s=0.1)
    video = iio.imread(path)
    assert video.shape[0] == len(frames) and video.shape[1:3] == (SIZE_PX[1], SIZE_PX[0])
    right = video[:, :, SIZE_PX[0] // 2:]
    assert red_pixels(right[alarm_step - 1]) < 20 <= red_pixels(right[alarm_step])  # the alarm line appears when raised
    dark = [int((right[t].max(-1) < 60).sum()) for t in (1, alarm_step)]
    assert dark[1] > dark[0] + 20  # the score traces are drawn up to the current step, not ahead of it
    left = video[:, :, : SIZE_PX[0] // 2].astype(int)
    assert np.abs(left[-1] - left[0]).mean() > 0.5  # the scene moves


def test_a_video_needs_a_rendering_env(setup):
    _, policy, monitor = setup
    env = envs.make_env("push_t", max_episode_steps=MAX_STEPS)
    with pytest.raises(ValueError, match="render_mode='rgb_array'"):
        record_episode(env, MonitoredPolicy(policy, monitor, num_samples=8), seed=0)


class _Frames(gym.Wrapper):
    """A user's env that renders without declaring render_modes in its metadata, or renders nothing."""

    metadata = {}

    def __init__(self, env, blank: bool = False):
        super().__init__(env)
        self.blank = blank

    @property
    def render_mode(self):
        return "rgb_array"

    def render(self):
        return None if self.blank else np.zeros((16, 16, 3), np.uint8)


def test_frames_come_from_render_whatever_the_env_declares(setup):
    """One frame per reset and step from the env's own render(), with no render_modes metadata; an env whose render()
    gives no image is an error naming it and the fix."""
    _, policy, monitor = setup
    env = _Frames(envs.make_env("push_t", max_episode_steps=MAX_STEPS))
    result, frames = record_episode(env, MonitoredPolicy(policy, monitor, num_samples=8), seed=0)
    assert len(frames) == len(result.steps["action"]) + 1 and frames[0].shape == (16, 16, 3)
    with pytest.raises(ValueError, match=r"PushTEnv.render\(\) under render_mode='rgb_array' returned NoneType, not an \(H, W, 3\) "
                                         r"array.*videos=false"):
        record_episode(_Frames(envs.make_env("push_t", max_episode_steps=MAX_STEPS), blank=True),
                       MonitoredPolicy(policy, monitor, num_samples=8), seed=0)


@pytest.mark.parametrize("fault, problem", [("no encoder", r"was not written(: the encoder left no file| \(OSError: .*Broken pipe\))"),
                                            ("empty", "was written empty"),
                                            ("short", r"(reads back 2 of its 3 frames|was not written \(OSError: .*Broken pipe\))")])
def test_a_video_the_encoder_did_not_write_whole_is_an_error_and_leaves_the_file_as_it_was(tmp_path, monkeypatch, fault, problem):
    """ffmpeg refusing its encoder leaves no file (imageio raises only when the frames overflow the pipe), an empty one or a
    short one (imageio-ffmpeg 0.5.0, the floor, raises the broken pipe of an encoder that stopped early): the error names
    which and the fix, the file at the path stays as it was, and so does the up-front check."""
    from ffmpeg_faults import failing_ffmpeg

    frames = [np.full((16, 16, 3), 40 * t, np.uint8) for t in range(3)]
    path = write_video(tmp_path / "alarm.mp4", frames, [])
    before = path.read_bytes()
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", failing_ffmpeg(tmp_path, fault))
    with pytest.raises(VideoNotWritten, match=rf"the video {path} {problem}; check that {tmp_path} is writable and has space, .*an H\.264 encoder\)$"):
        write_video(path, frames, [])
    assert path.read_bytes() == before and [p.name for p in tmp_path.glob(".*")] == []
    if fault != "short":  # a 2-frame probe is whole when two frames are written
        with pytest.raises(ValueError, match=rf"imageio cannot write a \.mp4 video here \(a 2-frame probe {problem}\)"):
            check_video_writer()


def test_a_video_into_a_folder_that_cannot_be_written_is_an_error_naming_the_folder(tmp_path):
    (tmp_path / "taken").write_text("")  # a file where the folder should be
    with pytest.raises(VideoNotWritten, match=rf"the video {tmp_path}/taken/alarm.mp4 was not written \((FileExistsError|NotADirectoryError)"
                                              rf".*check that {tmp_path}/taken is writable"):
        write_video(tmp_path / "taken" / "alarm.mp4", [np.zeros((16, 16, 3), np.uint8)], [])
