"""In the control loop: the monitored policy wrapper, its episode loop and the rollout recorder."""

from fiper.control.deadline import DeadlineExceeded, DeadlineMonitor, DeadlinePolicy
from fiper.control.decision import Decision
from fiper.control.failsafe import FailSafeError
from fiper.control.history import ObsHistory
from fiper.control.loop import EpisodeResult, run_episode
from fiper.control.monitored_policy import MonitoredPolicy, medoid_index
from fiper.control.recorder import RolloutRecorder, decision_arrays, episode_meta

__all__ = [
    "DeadlineExceeded",
    "DeadlineMonitor",
    "DeadlinePolicy",
    "Decision",
    "EpisodeResult",
    "FailSafeError",
    "MonitoredPolicy",
    "ObsHistory",
    "RolloutRecorder",
    "decision_arrays",
    "episode_meta",
    "medoid_index",
    "run_episode",
]
