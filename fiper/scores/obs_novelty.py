"""Raw-observation novelty: how far the observation itself lies from the fit observations, a reference
that reads nothing of the policy.

Each decision's observation (the newest frame, as recorded in ``data/<key>``) becomes one fixed
feature vector: low-dim keys flattened (vectors, and (n, d) arrays such as one env's (1, D) state), camera images
(``fiper.scores.images``: both sides at least 16 pixels, a channel axis of at most 4 first or last) turned grey
(mean over the channels) and mean-pooled to ``image_size`` x ``image_size``. The score is the
Mahalanobis distance (shrunk covariance) or the mean k-NN distance of the standardised vector to
the fit decisions' vectors. A feature that never moved in the fit decisions (an obstacle flag that
is always 0 in distribution) is standardised by the median spread of the features that did
(``constant_scale``): its change is measured in their units (a flag of 1 beside positions in metres
reads as 1 m), not as one spread, which would hide it whenever the observation's units are small. A learned score on the policy's embedding that does not beat it sees
nothing in the observation that a fixed distance on the raw input would not (docs/scores.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor

from fiper.nn import check_constant_std, fit_standardizer
from fiper.scores.base import ScoreBase, ScoreFitData
from fiper.scores.images import IMAGE_RULE, MAX_WHOLE, channels_first, image_axes, pool_image
from fiper.scores.inputs import check_decision_ends, check_finite, chunks, host_array
from fiper.scores.knn import KNNDistance
from fiper.scores.mahalanobis import Mahalanobis
from fiper.scores.observations import RECORD_FIX

METHODS = {"mahalanobis": Mahalanobis, "knn": KNNDistance}


def key_features(key: str, rows: np.ndarray, image_size: int, colour: bool = False) -> np.ndarray:
    """One key's rows (n, *shape) as float64 features (n, f): flattened, or pooled for an image (grey, or each
    channel apart with ``colour``)."""
    x = np.asarray(rows, dtype=np.float64)
    shape = x.shape[1:]
    if image_axes(shape) is None:
        if len(shape) <= 2 or int(np.prod(shape)) <= MAX_WHOLE:  # read whole, every number a feature
            return x.reshape(x.shape[0], -1)
        raise ValueError(f"observation {key!r} has per-step shape {shape}: not an image ({IMAGE_RULE}) and too large to "
                         f"read whole ({int(np.prod(shape))} numbers, at most {MAX_WHOLE}); list only other keys in the "
                         "score's keys")
    channels = channels_first(x)  # (n, C, H, W)
    return pool_image(channels if colour else channels.mean(axis=1), image_size).reshape(x.shape[0], -1)


class ObservationNovelty(ScoreBase):
    """Distance of the decision's raw observation (fixed features) to the fit observations."""

    name = "obs_novelty"
    needs = frozenset({"observation"})
    dtype = torch.float64
    backend = "numpy"
    checks_offline_inputs = True  # score_offline checks the observations and decision_ends itself

    def __init__(self, keys: list[str] | None = None, method: str = "mahalanobis", image_size: int = 8, k: int = 5,
                 shrinkage: float | None = None, max_reference: int | None = 20000, constant_scale: float | str = "median",
                 colour: bool = False):
        if keys is not None and (isinstance(keys, str) or not all(isinstance(k_, str) for k_ in keys) or not len(keys)):
            raise ValueError(f"{self.name}: keys must be a non-empty list of observation key names, or None (every "
                             f"recorded observation key), got {keys!r}")
        if method not in METHODS:
            raise ValueError(f"{self.name}: method must be one of {sorted(METHODS)}, got {method!r}")
        if int(image_size) < 1:
            raise ValueError(f"{self.name}: image_size must be >= 1 (pooled image side), got {image_size}")
        constant_scale = check_constant_std(constant_scale, f"{self.name}: constant_scale")
        if not isinstance(colour, (bool, np.bool_)):
            raise ValueError(f"{self.name}: colour must be true or false (pool each image channel apart, or grey), got {colour!r}")
        inner = {"shrinkage": shrinkage} if method == "mahalanobis" else {"k": k, "max_reference": max_reference}
        METHODS[method](**inner)  # validates k, shrinkage, max_reference with the distance's own messages
        super().__init__(keys=None if keys is None else [str(k_) for k_ in keys], method=method, image_size=int(image_size),
                         k=int(k), shrinkage=None if shrinkage is None else float(shrinkage),
                         max_reference=None if max_reference is None else int(max_reference),
                         constant_scale=constant_scale, colour=bool(colour))
        self.key_shapes: dict[str, tuple[int, ...]] = {}
        self.feature_mean = self.feature_std = None
        self.distance: ScoreBase | None = None

    # ------------------------------------------------------------------ features
    def _distance(self) -> ScoreBase:
        """The distance on the standardised features (the score standardises them, so the distance does not again)."""
        c = self._config
        params = {"shrinkage": c["shrinkage"]} if c["method"] == "mahalanobis" else {"k": c["k"], "max_reference": c["max_reference"]}
        return METHODS[c["method"]](**params, standardize=False)

    def _keys(self, observations: Any, what: str) -> list[str]:
        if observations is None:
            raise ValueError(f"{self.name} reads the raw observation but {what} holds none; give the observations of the "
                             "decisions (ScoreFitData(observations=...), ScoreFitData.from_store(store, observations=True), "
                             "FailureMonitor.step(..., observation=obs))")
        if not isinstance(observations, Mapping):
            raise ValueError(f"{self.name}: {what} must map observation keys to arrays, got {type(observations).__name__}")
        keys = self._config["keys"] or sorted(self.key_shapes) or sorted(observations)
        missing = [k for k in keys if k not in observations]
        if missing or not keys:
            source, fix = getattr(observations, "source", what), getattr(observations, "problem", "") or RECORD_FIX
            wanted = f"reads the observation keys {missing}" if missing else "reads the raw observation"
            raise ValueError(f"{self.name} {wanted} but {source} holds {sorted(observations) or 'no observation keys'}; {fix}")
        return keys

    def _features(self, observations: Mapping[str, Any], rows: Any, keys: list[str], *, batched: bool) -> np.ndarray:
        """Feature rows (n, F) of ``observations[key][rows]``, shapes and finiteness checked."""
        parts = []
        for key in keys:
            raw = host_array(observations[key][rows] if rows is not None else observations[key])
            if raw.dtype.kind not in "fiub":
                raise ValueError(f"{self.name}: observation {key!r} must be numeric, got dtype {raw.dtype}")
            if not batched:
                raw = raw[None]
            want = self.key_shapes.get(key)
            if want is not None and tuple(raw.shape[1:]) != want:
                raise ValueError(f"{self.name}: observation {key!r} has shape {tuple(raw.shape[1:])} but the score was fitted "
                                 f"on {want}; pass the observation layout it was fitted on (or refit it)")
            check_finite(self.name, f"observation {key!r}", raw)
            parts.append(self._key_features(key, raw))
        return np.concatenate(parts, axis=1)

    def _key_features(self, key: str, rows: np.ndarray) -> np.ndarray:
        """One key's checked rows (n, *shape) as feature rows (n, f)."""
        return key_features(key, rows, self._config["image_size"], self._config.get("colour", False))

    def _row_elements(self, observations: Mapping[str, Any], keys: list[str]) -> int:
        return max(1, sum(int(np.prod(observations[k].shape[1:], dtype=np.int64)) for k in keys))

    # ------------------------------------------------------------------ fit / score
    def fit(self, data: ScoreFitData) -> ObservationNovelty:
        """Standardise, then fit the distance on the fit decisions' observation features; returns self."""
        if not isinstance(data, ScoreFitData):
            raise TypeError(f"{self.name}.fit expects a ScoreFitData, got {type(data).__name__}")
        self.key_shapes, self.fitted = {}, False
        observations = getattr(data, "observations", None)
        keys = self._keys(observations, "the fit data")
        self.device = data.device
        shapes = {k: tuple(int(s) for s in observations[k].shape[1:]) for k in keys}
        rows = max(1, self.chunk_elements // self._row_elements(observations, keys))
        features = np.concatenate([self._features(observations, sl, keys, batched=True)
                                   for sl in chunks(data.n_decisions, rows)])
        self.key_shapes = shapes
        self._config["keys"] = keys  # the resolved keys are part of the fitted score, as saved
        self._fit(torch.as_tensor(features), None, data.decision_ends, int(data.seed))
        self._load_tensors({k: v.detach().contiguous().clone() for k, v in self._tensors().items()})
        self.fitted = True
        self.reset()
        return self

    def _fit(self, embeddings: Tensor, samples: None, decision_ends: np.ndarray, seed: int) -> None:
        self.feature_mean, self.feature_std = fit_standardizer(embeddings, constant_std=self._config["constant_scale"])
        standard = (embeddings - self.feature_mean) / self.feature_std
        self.distance = self._distance().fit(ScoreFitData(standard, None, decision_ends, seed=seed, device=self.device))

    def _score(self, embeddings: Any, samples: None) -> np.ndarray:
        with torch.no_grad():
            features = torch.as_tensor(np.asarray(embeddings), dtype=torch.float64, device=self.device)
            standard = (features - self.feature_mean) / self.feature_std
            return self.distance._score(standard, None).double().cpu().numpy()

    def step(self, embedding: Any = None, samples: Any = None, *, observation: Mapping[str, Any] | None = None) -> float:
        """Score one decision from its observation {key: one step's array}; embedding and samples are not read."""
        self._require_fitted()
        keys = self._keys(observation, "the decision")
        return float(self._score(self._features(observation, None, keys, batched=False), None)[0])

    def step_checked(self, embedding: Any = None, samples: Any = None, *, observation: Mapping[str, Any] | None = None) -> float:
        """``step``: the monitor does not check observations, so the score checks them itself."""
        return self.step(embedding, samples, observation=observation)

    def score_offline(self, embeddings: Any = None, samples: Any = None, decision_ends: Any = None, *,
                      observations: Mapping[str, Any] | None = None) -> np.ndarray:
        """Scores (N,) of every decision from ``observations`` {key: (N, *shape) rows}, in memory-bounded chunks."""
        keys, n = self._offline_keys(observations)
        check_decision_ends(self.name, decision_ends, n)
        out = np.empty(n, dtype=np.float64)
        for sl in chunks(n, max(1, self.chunk_elements // self._row_elements(observations, keys))):
            out[sl] = self._score(self._features(observations, sl, keys, batched=True), None)
        return out

    def _offline_keys(self, observations: Mapping[str, Any] | None) -> tuple[list[str], int]:
        """The keys score_offline reads and the number of decisions they all hold (fitted score, checked)."""
        self._require_fitted()
        keys = self._keys(observations, "score_offline's observations")
        n = len(observations[keys[0]])
        short = [k for k in keys if len(observations[k]) != n]
        if short:
            raise ValueError(f"{self.name}: observations {short} hold a different number of decisions than {keys[0]!r} ({n})")
        return keys, n

    # ------------------------------------------------------------------ state
    def _tensors(self) -> dict[str, Tensor]:
        return {**self._observation_tensors(), "feature.mean": self.feature_mean, "feature.std": self.feature_std}

    def _shape_tensors(self) -> dict[str, Tensor]:
        """Each observation key's fitted shape, as saved."""
        return {f"shape.{k}": torch.tensor(s, dtype=torch.int64) for k, s in self.key_shapes.items()}

    def _load_key_shapes(self, tensors: Mapping[str, Tensor], *also: str) -> None:
        """The fitted key shapes from saved ``tensors``, which must also hold the entries ``also``."""
        keys = self._config["keys"] or []
        missing = [f"shape.{k}" for k in keys if f"shape.{k}" not in tensors] + [k for k in also if k not in tensors]
        if missing or not keys:
            raise ValueError(f"{self.name}: saved state lacks {missing or 'its observation keys'} (has {sorted(tensors)}); save it with state()")
        self.key_shapes = {k: tuple(int(s) for s in tensors[f"shape.{k}"].tolist()) for k in keys}

    def _observation_tensors(self) -> dict[str, Tensor]:
        """The inner distance's tensors and each observation key's fitted shape, as saved."""
        tensors, _ = self.distance.state()
        return {**{f"distance.{k}": v for k, v in tensors.items()}, **self._shape_tensors()}

    def _load_observation_tensors(self, tensors: Mapping[str, Tensor], width: int | None = None) -> int | None:
        """The key shapes and the inner distance (on ``width`` features: by default its saved mean's) from saved
        ``tensors``; returns that width."""
        self._load_key_shapes(tensors)
        own = {k.removeprefix("distance."): v for k, v in tensors.items() if k.startswith("distance.")}
        if width is None and "mean" in own:
            width = int(own["mean"].shape[0])
        distance = self._distance()
        config = {"name": distance.name, "params": distance.config, "embedding_dim": width, "sample_shape": None}
        self.distance = type(distance).from_state(own, config, device=self.device)
        return width

    def _load_tensors(self, tensors: Mapping[str, Tensor]) -> None:
        width = self._load_observation_tensors(tensors)
        if "feature.mean" in tensors:
            self.feature_mean, self.feature_std = tensors["feature.mean"], tensors["feature.std"]
        else:  # saved before the score standardised its features itself: the inner distance did, constant columns at 1
            self.feature_mean = torch.zeros(width, dtype=torch.float64, device=self.device)
            self.feature_std = torch.ones(width, dtype=torch.float64, device=self.device)
            self._config["constant_scale"] = 1.0
