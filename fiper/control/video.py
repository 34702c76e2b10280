"""A monitored episode as a video: the rendered frames beside the score traces, thresholds and alarm.

``record_episode`` runs one episode, rendering a frame after the reset and after every step (a
MuJoCo env's simulation data is kept as it was across ``render()``); ``write_video`` draws each
frame next to every score's windowed value and threshold up to that step, marks the first alarm
and names the response acting, and encodes the frames with imageio (mp4 through imageio-ffmpeg,
the ``image`` extra; ``.gif`` needs nothing), then reads the file back: an encoder ffmpeg refuses can
leave no file, an empty one or a short one without imageio raising, and that is ``VideoNotWritten``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from fiper.atomic import replacing
from fiper.control.decision import Decision
from fiper.control.loop import EpisodeResult, run_episode
from fiper.control.monitored_policy import MonitoredPolicy

VIDEO_FIX = "pip install 'fiper[image]' (imageio-ffmpeg encodes the mp4s)"
SIZE_PX = (960, 432)  # width, height: multiples of 16, so mp4 encoders need no resize


class VideoNotWritten(ValueError):
    """A video the encoder did not write whole (missing, empty or short of frames); the message names the fix."""


@contextmanager
def kept_simulation_state(env: Any) -> Iterator[None]:
    """Put a MuJoCo env's simulation data back as it was on exit, derived quantities included.

    Some envs' ``render()`` runs ``mj_forward`` (gymnasium-robotics' Fetch), which refreshes body positions that the
    next step reads (Fetch places its mocap at the gripper's), so a rendered re-run of an episode drifts from the
    unrendered one within a few steps. Other envs pass through unchanged.
    """
    import mujoco

    inner = getattr(env, "unwrapped", env)
    model, data = getattr(inner, "model", None), getattr(inner, "data", None)
    if not (isinstance(model, mujoco.MjModel) and isinstance(data, mujoco.MjData)):
        yield
        return
    saved = copy.copy(data)
    try:
        yield
    finally:
        # Every array of the data, in place: the env and its renderer hold this object. The constraint arrays, sized
        # per step, may differ in shape; the next step rebuilds them.
        data.time = saved.time
        for name in dir(saved):
            value = None if name.startswith("_") else getattr(saved, name)
            if isinstance(value, np.ndarray) and value.flags.writeable and getattr(data, name).shape == value.shape:
                getattr(data, name)[...] = value


def _is_frame(image: Any) -> bool:
    return isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[-1] in (3, 4)


def rendered_frame(env: Any) -> np.ndarray:
    """``env.render()`` checked to be an (H, W, 3) image: what a video needs from an env made with render_mode='rgb_array'.
    A list or tuple of such frames of one height (one per camera: lerobot's gym-hil renders its front and wrist views)
    is tiled side by side. The render leaves the simulation as it found it (:func:`kept_simulation_state`)."""
    with kept_simulation_state(env):
        image = env.render()
    if isinstance(image, (list, tuple)) and image and all(_is_frame(f) for f in image) \
            and len({f.shape[0] for f in image}) == 1 and len({f.shape[-1] for f in image}) == 1:
        image = np.concatenate(image, axis=1)
    if not _is_frame(image):
        what = (f"{type(image).__name__} of {', '.join(str(getattr(f, 'shape', type(f).__name__)) for f in image)}"
                if isinstance(image, (list, tuple)) else f"{type(image).__name__}{getattr(image, 'shape', '')}")
        raise ValueError(f"a video needs frames: {type(env.unwrapped).__name__}.render() under render_mode='rgb_array' "
                         f"returned {what}, not an (H, W, 3) array or a list of frames of one height (tiled side by "
                         "side); return the frame from render(), or set videos=false")
    return image


def check_video_writer(suffix: str = ".mp4") -> None:
    """Encode two small frames to a temporary ``suffix`` file as ``write_video`` does, so that a missing encoder stops a
    run before its sweep rather than after it: imageio without its ffmpeg plugin (imageio-ffmpeg, the ``image`` extra)
    writes no mp4, and gymnasium and shimmy install imageio alone."""
    import tempfile
    import warnings

    try:
        import imageio.v3 as iio
    except ImportError as err:
        raise ValueError(f"videos are written with imageio, which is not installed: {VIDEO_FIX}") from err
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # imageio's legacy plugins, imported while it looks for one
        probe = Path(tmp) / f"probe{suffix}"
        try:
            iio.imwrite(probe, np.zeros((2, 16, 16, 3), np.uint8), extension=suffix)
        except Exception as err:  # imageio's own: OSError "Could not find a backend", or the plugin's error
            raise ValueError(f"imageio cannot write a {suffix} video here ({type(err).__name__}: {_first_line(err)}): "
                             f"{VIDEO_FIX}") from err
        problem = written_problem(probe, 2)
        if problem:
            raise ValueError(f"imageio cannot write a {suffix} video here (a 2-frame probe {problem}): {VIDEO_FIX}")


def _first_line(err: BaseException) -> str:
    return (str(err).splitlines() or [""])[0]


def written_problem(path: Path, n_frames: int) -> str | None:
    """What is wrong with the video at ``path``, which should hold ``n_frames`` frames: missing, empty, unreadable or short of
    frames (an encoder ffmpeg refuses can fail without imageio raising); None when imageio reads them all back."""
    import imageio.v3 as iio

    if not path.is_file():
        return "was not written: the encoder left no file"
    if path.stat().st_size == 0:
        return "was written empty"
    try:
        read = sum(1 for _ in iio.imiter(path, extension=path.suffix))
    except Exception as err:  # the reader's own: the file is not a video it can decode
        return f"does not read back ({type(err).__name__}: {_first_line(err)})"
    return None if read == n_frames else f"reads back {read} of its {n_frames} frames"


def record_episode(env: Any, agent: MonitoredPolicy, *, seed: int, **kwargs) -> tuple[EpisodeResult, list[np.ndarray]]:
    """Run one episode (fiper.control.loop.run_episode) and return it with one frame per env step.

    The env must have been made with ``render_mode='rgb_array'``; frame 0 is the reset state.
    """
    if getattr(env, "render_mode", None) != "rgb_array":
        raise ValueError(f"a video needs frames: make the env with render_mode='rgb_array' (it has {getattr(env, 'render_mode', None)!r})")
    frames: list[np.ndarray] = []

    class _Collect:
        """Renders after each reset / step, so that the frames match the steps run_episode takes."""

        def __getattr__(self, name):
            return getattr(env, name)

        def reset(self, **kw):
            out = env.reset(**kw)
            frames.append(rendered_frame(env))
            return out

        def step(self, action):
            out = env.step(action)
            frames.append(rendered_frame(env))
            return out

    result = run_episode(_Collect(), agent, seed=seed, **kwargs)
    return result, frames


def _traces(decisions: Sequence[Decision]) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray], int | None]:
    """Env step of each decision, windowed score and threshold per score, env step of the first alarm."""
    steps = np.array([d.env_step for d in decisions], dtype=float)
    names = sorted({name for d in decisions if d.verdict for name in d.verdict.thresholds})
    value = {n: np.array([d.verdict.windowed.get(n, math.nan) if d.verdict else math.nan for d in decisions], dtype=float) for n in names}
    threshold = {n: np.array([d.verdict.thresholds.get(n, math.nan) if d.verdict else math.nan for d in decisions], dtype=float) for n in names}
    first = next((d.env_step for d in decisions if d.verdict and d.verdict.alarm), None)
    return steps, value, threshold, first


def write_video(path: str | Path, frames: Sequence[np.ndarray], decisions: Sequence[Decision], *, title: str = "",
                control_period_s: float | None = None, fps: float | None = None) -> Path:
    """Encode ``frames`` (one per env step) beside the score traces as a video at ``path`` (.mp4 or .gif), read back whole;
    VideoNotWritten, with ``path`` left as it was, when the encoder did not write every frame."""
    import imageio.v3 as iio
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not frames:
        raise ValueError("no frames to write: record the episode with record_episode (render_mode='rgb_array')")
    path = Path(path)
    steps, value, threshold, first_alarm = _traces(decisions)
    names = list(value) or ["(no monitor)"]
    fig = plt.figure(figsize=(SIZE_PX[0] / 100, SIZE_PX[1] / 100), dpi=100)
    grid = fig.add_gridspec(len(names), 2, width_ratios=[1, 1.3])
    ax_frame = fig.add_subplot(grid[:, 0])
    ax_frame.set_axis_off()
    image = ax_frame.imshow(frames[0])
    caption = ax_frame.set_title("", fontsize=9)
    cursors, axes, alarm_lines, traces = [], [], [], []
    for i, name in enumerate(names):
        ax = fig.add_subplot(grid[i, 1])
        axes.append(ax)
        if name in value:
            # markers: a monitor that took over at its first decision scored one point, which a line alone does not show
            for series, style in ((value[name], dict(color="black", lw=1.2, marker=".", ms=4, label="windowed score")),
                                  (threshold[name], dict(color="tab:orange", lw=1.0, ls="--", marker="_", ms=6, label="threshold"))):
                traces.append((ax.plot([], [], drawstyle="steps-post", **style)[0], series))
            finite = np.concatenate([value[name][np.isfinite(value[name])], threshold[name][np.isfinite(threshold[name])]])
            if finite.size:
                low, high = float(finite.min()), float(finite.max())
                ax.set_ylim(low - 0.05 * (high - low + 1e-9), high + 0.15 * (high - low + 1e-9))
        if first_alarm is not None:  # shown from the step it is raised, as it happens
            alarm_lines.append(ax.axvline(first_alarm, color="tab:red", lw=1.5, zorder=4, visible=False))
        ax.set_xlim(-0.01 * len(frames) - 0.5, max(len(frames) - 1, 1))  # a point at step 0 clear of the axis
        ax.set_ylabel(name, fontsize=8)
        ax.tick_params(labelsize=7)
        cursors.append(ax.axvline(0, color="tab:blue", lw=0.8, alpha=0.7))
    if value:  # without a monitor there is no score to name
        axes[0].legend(fontsize=7, loc="upper left", frameon=False)
    axes[-1].set_xlabel("env step", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    acting = {d.env_step: d.intervention for d in decisions}
    rendered, current = [], ""
    for t, frame in enumerate(frames):
        current = acting.get(t, current)
        image.set_data(frame)
        seconds = f" = {t * control_period_s:.2f} s" if control_period_s else ""
        alarm = "  ALARM" if first_alarm is not None and t >= first_alarm else ""
        caption.set_text(f"step {t}{seconds}  {current}{alarm}")
        caption.set_color("tab:red" if alarm else "black")
        for cursor in cursors:
            cursor.set_xdata([t, t])
        for line in alarm_lines:
            line.set_visible(bool(alarm))
        shown = steps <= t  # the traces so far, as the monitor saw them
        for line, series in traces:
            line.set_data(steps[shown], series[shown])
        fig.canvas.draw()
        rendered.append(np.asarray(fig.canvas.buffer_rgba())[..., :3].copy())
    plt.close(fig)
    rate = fps or (1.0 / control_period_s if control_period_s else 10.0)
    try:
        with replacing(path) as tmp:
            if path.suffix == ".gif":
                iio.imwrite(tmp, np.stack(rendered), duration=1000.0 / rate, loop=0, extension=".gif")
            else:
                iio.imwrite(tmp, np.stack(rendered), fps=rate, extension=path.suffix)
            problem = written_problem(tmp, len(rendered))
            if problem:
                raise VideoNotWritten(f"the video {path} {problem}; {_write_fix(path)}")
    except VideoNotWritten:
        raise
    except Exception as err:  # imageio's or the file system's: a folder not writable, a full disk
        raise VideoNotWritten(f"the video {path} was not written ({type(err).__name__}: {_first_line(err)}); "
                              f"{_write_fix(path)}") from err
    return path


def _write_fix(path: Path) -> str:
    return (f"check that {path.parent} is writable and has space, and that imageio's ffmpeg encodes {path.suffix} here "
            f"({VIDEO_FIX}; where IMAGEIO_FFMPEG_EXE is set, the ffmpeg it names needs an H.264 encoder)")
