"""The failure monitor: scores -> windows -> conformal thresholds -> alarm, online and offline."""

from fiper.monitor.artifact import MonitorFileError, check_replaceable, load_monitor, read_monitor_config, save_monitor
from fiper.monitor.identity import PolicyIdentity
from fiper.monitor.monitor import FailureMonitor, MonitorNotCalibratedError
from fiper.monitor.padding import from_padded, to_padded
from fiper.monitor.verdict import MonitorVerdict

__all__ = [
    "FailureMonitor",
    "MonitorFileError",
    "MonitorNotCalibratedError",
    "PolicyIdentity",
    "MonitorVerdict",
    "check_replaceable",
    "from_padded",
    "load_monitor",
    "read_monitor_config",
    "save_monitor",
    "to_padded",
]
