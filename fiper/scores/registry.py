"""Score registry: build a score by name, or restore a saved one from its state."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from fiper.scores.ace import ACE
from fiper.scores.base import ScoreBase
from fiper.scores.knn import KNNDistance
from fiper.scores.logpzo import LogpZO
from fiper.scores.mahalanobis import Mahalanobis
from fiper.scores.pca_kmeans import PCAKMeans
from fiper.scores.rnd_a import RNDA
from fiper.scores.rnd_oe import RNDOE
from fiper.scores.stac import STAC

SCORES: dict[str, type[ScoreBase]] = {cls.name: cls for cls in (RNDOE, ACE, STAC, RNDA, LogpZO, PCAKMeans, Mahalanobis, KNNDistance)}


def score_class(name: str) -> type[ScoreBase]:
    """The class registered under ``name``; a KeyError lists the known names."""
    try:
        return SCORES[name]
    except KeyError:
        raise KeyError(f"unknown score {name!r}; known scores: {', '.join(sorted(SCORES))}") from None


def make_score(name: str, **kwargs: Any) -> ScoreBase:
    """An unfitted score by registry name with its hyper-parameters, e.g. make_score('ace', kappa=0.03)."""
    return score_class(name)(**kwargs)


def score_from_state(tensors: Mapping[str, Tensor], config: Mapping[str, Any], *, device: str | torch.device = "cpu") -> ScoreBase:
    """Restore a fitted score from ``score.state()`` output; the class is looked up by config['name']."""
    if "name" not in config:
        raise ValueError(f"score config has no 'name' (keys: {sorted(config)}); save it with score.state()")
    return score_class(config["name"]).from_state(tensors, config, device=device)
