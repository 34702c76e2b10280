"""Training curves: TensorBoard event files while training runs, a loss-curve PNG at every checkpoint.

TensorBoard comes with the ``train`` extra; without it the PNG and metrics.json are still written
and one warning says what to install.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from pathlib import Path

from fiper.atomic import replacing

TENSORBOARD_DIR = "tensorboard"
CURVE_FILE = "loss_curve.png"


class LossLog:
    """Scalars ``loss/train`` and ``loss/val`` per logged step, under ``<out_dir>/tensorboard``."""

    def __init__(self, out_dir: str | Path):
        self.directory = Path(out_dir) / TENSORBOARD_DIR
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # torch raises ImportError naming tensorboard when it is missing
            warnings.warn("tensorboard is not installed, so no event files are written (loss_curve.png and metrics.json "
                          "are); pip install 'fiper[train]' for them", stacklevel=2)
            self.writer = None
        else:
            self.writer = SummaryWriter(str(self.directory))

    def add(self, step: int, train: float, val: float) -> None:
        if self.writer is None:
            return
        self.writer.add_scalar("loss/train", train, step)
        if math.isfinite(val):
            self.writer.add_scalar("loss/val", val, step)
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def write_loss_curve(path: str | Path, train_loss: Sequence[tuple[int, float]], val_loss: Sequence[tuple[int, float]],
                     title: str = "") -> Path:
    """Train and validation loss against step on a log axis, written atomically as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=110)
    for label, points, style in (("train", train_loss, "-"), ("validation (EMA)", val_loss, "--")):
        finite = [(s, v) for s, v in points if math.isfinite(v) and v > 0]
        if finite:
            ax.plot(*zip(*finite), style, label=label)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title, fontsize=9)
    if ax.lines:
        ax.legend(frameon=False)
    fig.tight_layout()
    with replacing(path) as tmp:
        fig.savefig(tmp)
    plt.close(fig)
    return path
