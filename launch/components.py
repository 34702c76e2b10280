"""Hydra config groups generated from fiper's one definition of each component.

``score/<name>``: every registered score with its constructor defaults (fiper.monitor.spec.ScoreSpec);
``monitor/fiper``: FIPER's MonitorSpec; ``method/<name>``: the evaluation's default methods
(fiper.evaluation.config.DEFAULT_METHODS). Entry points that compose them import this module first,
so no yaml restates a default: ``launch.fit monitor.scores.ace.kappa=0.05`` overrides one value.
"""

from __future__ import annotations

from hydra.core.config_store import ConfigStore

from fiper.evaluation.config import DEFAULT_METHODS
from fiper.monitor.spec import fiper_spec, score_defaults
from fiper.scores.registry import SCORES


def register() -> None:
    """Store the score and monitor groups in hydra's ConfigStore (idempotent)."""
    store = ConfigStore.instance()
    for name in sorted(SCORES):
        store.store(group="score", name=name, node=score_defaults(name))
    store.store(group="monitor", name="fiper", node=fiper_spec().as_dict())
    for name, method in DEFAULT_METHODS.items():
        store.store(group="method", name=name, node=method)


register()
