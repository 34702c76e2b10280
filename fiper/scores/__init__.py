"""Failure scores: one class per score, one shared life cycle (see fiper.scores.base and docs/scores.md)."""

from fiper.scores.ace import ACE
from fiper.scores.base import FailureScore, ScoreBase, ScoreFitData, ScoreNotFittedError
from fiper.scores.knn import KNNDistance
from fiper.scores.logpzo import LogpZO
from fiper.scores.mahalanobis import Mahalanobis
from fiper.scores.pca_kmeans import PCAKMeans
from fiper.scores.registry import SCORES, make_score, register_score, score_class, score_from_state
from fiper.scores.rnd_a import RNDA
from fiper.scores.rnd_oe import RNDOE
from fiper.scores.stac import STAC
from fiper.scores.training import TrainConfig

__all__ = [
    "ACE",
    "FailureScore",
    "KNNDistance",
    "LogpZO",
    "Mahalanobis",
    "PCAKMeans",
    "RNDA",
    "RNDOE",
    "SCORES",
    "STAC",
    "ScoreBase",
    "ScoreFitData",
    "ScoreNotFittedError",
    "TrainConfig",
    "make_score",
    "register_score",
    "score_class",
    "score_from_state",
]
