"""A hydra callback that runs each sweep job in the directory the sweep was launched from.

Local (joblib) and SLURM jobs start there already; a Ray job starts in its worker's directory (where
`ray start` ran, on whichever node), so relative paths such as ``out=runs/sweep/a.zarr`` would land
there instead. The Ray preset (``launch/conf/hydra/launcher/ray_cluster.yaml``) installs this callback.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger(__name__)


class RunInLaunchDirectory(Callback):
    """chdir to ``hydra.runtime.cwd`` (the launching directory) for the job, and back after it."""

    def __init__(self) -> None:
        self._previous: str | None = None

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        launch_dir = str(config.hydra.runtime.cwd)
        if not os.path.isdir(launch_dir):
            log.warning("the sweep was launched from %s, which does not exist on %s: this job's relative paths resolve "
                        "against %s. Give absolute paths on a filesystem every node mounts (policy_dir=/shared/..., "
                        "out=/shared/...)", launch_dir, socket.gethostname(), os.getcwd())
            return
        self._previous = os.getcwd()
        os.chdir(launch_dir)

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        if self._previous is not None:
            os.chdir(self._previous)
            self._previous = None
