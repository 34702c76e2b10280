"""Dynamics residual: how differently the world responded to the policy's last commands than in the fit episodes,
a reference that reads the raw observation and the sampled chunks but nothing inside the policy.

Each decision's observation becomes the fixed feature vector of ``obs_novelty`` (fiper/scores/obs_novelty.py: low-dim
keys flattened, images grey and pooled), standardised on the fit decisions (a feature that never moved by the median
spread of those that did, ``constant_scale``). The decision's sample batch (B, H, A) is summarised by its mean over the
B samples, flattened and standardised: the score is not told which sample the controller executed, so it keeps to
what every decision provides. A forward model, ridge regression with an intercept, predicts the change of the
features from one decision to the next of the same episode from the previous decision's features and chunk summary::

    x_t - x_{t-1}  ~  W [x_{t-1}, u_{t-1}] + b

fitted on the consecutive pairs of the fit episodes; the ridge strength is chosen by cross-validation over the fit
episodes (``choose_ridge``) unless ``ridge`` is given. The score is the Mahalanobis length of the residual (observed
minus predicted change), summed over the last ``horizon`` decisions of the episode (1: this decision's alone), under
the covariance of the fit decisions' residuals summed the same way, shrunk toward a scaled identity (Ledoit-Wolf
unless ``shrinkage``). Summed residuals compare the displacement over ``horizon`` decisions with the sum of the predicted
steps: noise on the observation cancels between consecutive differences, a changed response adds up.
A state unlike the fit states that moves as the fit states moved scores low (a feature constant in the fit
episodes, such as an obstacle flag, gets zero weight in the model and leaves no residual); a world that answers the
same commands differently (a heavier object, more friction, a collision) scores high.

An episode's first decision has no previous one and scores 0. That is a fixed rule applied alike to the calibration
episodes and to every later one, so calibration and test scores stay exchangeable and the conformal guarantee
holds; the alarm compares strictly (score > threshold), so a 0 never alarms, and a trailing window over it adds
nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor

from fiper.nn import fit_standardizer
from fiper.scores.base import ScoreBase, ScoreFitData
from fiper.scores.inputs import FitRows, check_decision_ends, chunks, episode_starts
from fiper.scores.mahalanobis import Mahalanobis
from fiper.scores.obs_novelty import ObservationNovelty

RIDGE_GRID = tuple(float(a) for a in np.logspace(-6, 3, 19))  # candidates of the CV choice, relative to unit-variance inputs
FOLDS = 5  # episode folds of the ridge strength's cross-validation


def ridge_fit(inputs: Tensor, targets: Tensor, ridge: float) -> tuple[Tensor, Tensor, Tensor]:
    """Ridge regression with intercept of targets (n, q) on inputs (n, p): (weight (p, q), input mean, target mean).
    The strength multiplies n, so it is relative to the inputs' per-column variance."""
    n = inputs.shape[0]
    in_mean, out_mean = inputs.mean(dim=0), targets.mean(dim=0)
    xc, yc = inputs - in_mean, targets - out_mean
    gram = xc.T @ xc + ridge * n * torch.eye(xc.shape[1], dtype=xc.dtype, device=xc.device)
    return torch.linalg.solve(gram, xc.T @ yc), in_mean, out_mean


def choose_ridge(inputs: Tensor, targets: Tensor, groups: np.ndarray, grid: tuple[float, ...] = RIDGE_GRID) -> float:
    """The strength of ``grid`` with the least squared error on held-out episodes: ``FOLDS``-fold cross-validation
    whose folds are whole episodes (``groups``: each row's episode; fold = episode index mod FOLDS, deterministic).
    Consecutive decisions of one episode are alike, so rows held out from the episodes a fit saw would favour a
    penalty too weak for new episodes. Fewer than two episodes: the grid's middle strength."""
    episodes = np.unique(groups)
    if episodes.size < 2:
        return grid[len(grid) // 2]
    fold = np.searchsorted(episodes, groups) % min(FOLDS, episodes.size)
    error = np.zeros(len(grid))
    for k in np.unique(fold):
        train = torch.as_tensor(np.flatnonzero(fold != k), device=inputs.device)
        test = torch.as_tensor(np.flatnonzero(fold == k), device=inputs.device)
        x, y = inputs[train], targets[train]
        n = x.shape[0]
        in_mean, out_mean = x.mean(dim=0), y.mean(dim=0)
        xc, yc = x - in_mean, y - out_mean
        _, s, vh = torch.linalg.svd(xc, full_matrices=False)
        vty = (vh @ (xc.T @ yc))  # (r, q): V^T X^T Y
        xt = (inputs[test] - in_mean) @ vh.T  # held-out inputs in the right singular basis
        yt = targets[test] - out_mean
        for j, alpha in enumerate(grid):
            pred = xt @ (vty / (s.pow(2) + alpha * n)[:, None])
            error[j] += float((yt - pred).pow(2).sum())
    return grid[int(np.argmin(error))]


class DynamicsResidual(ObservationNovelty):
    """Mahalanobis length of the residual of a forward model (previous observation, previous chunks -> observation change).

    It reads the observation as ``obs_novelty`` does (the same keys, features and checks, inherited from it)."""

    name = "dynamics_residual"
    needs = frozenset({"observation", "samples"})
    dtype = torch.float64
    backend = "numpy"
    streams_fit_samples = True  # the fit keeps only each batch's mean over samples
    checks_offline_inputs = True  # score_offline checks the observations, samples and decision_ends itself
    fit = ScoreBase.fit  # ScoreBase's fit (samples checked and streamed), not obs_novelty's (observations only)

    def __init__(self, keys: list[str] | None = None, image_size: int = 8, horizon: int = 1, ridge: float | None = None,
                 shrinkage: float | None = None, constant_scale: float | str = "median", colour: bool = False):
        if isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)) or int(horizon) < 1:
            raise ValueError(f"{self.name}: horizon must be a whole number of decisions >= 1 (residuals summed over the "
                             f"last horizon decisions), got {horizon!r}")
        if ridge is not None and (isinstance(ridge, bool) or not isinstance(ridge, (int, float)) or not float(ridge) > 0):
            raise ValueError(f"{self.name}: ridge must be a positive number (strength relative to unit-variance inputs) or "
                             f"None (chosen by cross-validation over the fit episodes), got {ridge!r}")
        # obs_novelty's constructor validates keys, image_size, shrinkage, constant_scale and colour under this score's name
        super().__init__(keys=keys, method="mahalanobis", image_size=image_size, shrinkage=shrinkage,
                         constant_scale=constant_scale, colour=colour)
        c = self._config
        self._config = {"keys": c["keys"], "image_size": c["image_size"], "horizon": int(horizon),
                        "ridge": None if ridge is None else float(ridge),
                        "shrinkage": c["shrinkage"], "constant_scale": c["constant_scale"], "colour": c["colour"]}
        self.action_mean = self.action_std = self.weight = self.input_mean = self.change_mean = None
        self.ridge_used: float | None = None
        self._previous: tuple[Tensor, Tensor] | None = None
        self._recent: list[Tensor] = []  # this episode's last horizon - 1 residuals (step)

    # ------------------------------------------------------------------ inputs
    def _distance(self) -> Mahalanobis:
        return Mahalanobis(shrinkage=self._config["shrinkage"], standardize=False)

    def _state_features(self, observations: Mapping[str, Any], rows: Any, keys: list[str]) -> Tensor:
        """Standardised observation features (n, F) of the decisions ``rows`` (shapes and finiteness checked)."""
        x = torch.as_tensor(self._features(observations, rows, keys, batched=True), dtype=torch.float64, device=self.device)
        return (x - self.feature_mean) / self.feature_std

    def _chunk_summary(self, samples: Any) -> Tensor:
        """(n, H*A) standardised mean over the B samples of each decision's batch (n, B, H, A)."""
        u = torch.as_tensor(samples, dtype=torch.float64, device=self.device).mean(dim=1).flatten(1)  # arrays and device tensors
        return (u - self.action_mean) / self.action_std

    def _residuals(self, states: Tensor, actions: Tensor, starts: np.ndarray) -> Tensor:
        """Residuals (n, F) of decisions in order: observed minus predicted change from the row before; 0 where ``starts``."""
        out = torch.zeros_like(states)
        later = np.flatnonzero(~starts)
        if later.size:
            before = torch.as_tensor(later - 1, device=self.device)
            now = torch.as_tensor(later, device=self.device)
            inputs = torch.cat([states[before], actions[before]], dim=1)
            out[now] = states[now] - states[before] - self.change_mean - (inputs - self.input_mean) @ self.weight
        return out

    def _summed(self, residuals: Tensor, starts: np.ndarray) -> Tensor:
        """Each row's residual summed with those of the ``horizon`` - 1 decisions before it in its episode (fewer near
        its start): the k-step observed displacement against the sum of the predicted steps, in which noise on the
        observation cancels between consecutive differences while a changed response adds up."""
        k = self._config["horizon"]
        if k == 1:
            return residuals
        n = residuals.shape[0]
        total = torch.cat([torch.zeros_like(residuals[:1]), residuals.cumsum(dim=0)])
        first = np.maximum.accumulate(np.where(starts, np.arange(n), 0))  # each row's episode start
        lo = np.maximum(np.arange(n) - k + 1, first)
        return total[1:] - total[torch.as_tensor(lo, device=self.device)]

    def _residual_scores(self, states: Tensor, actions: Tensor, starts: np.ndarray) -> np.ndarray:
        """Scores (n,) of decisions in order: 0 where ``starts``, else the length of the (summed) residual."""
        out = np.zeros(states.shape[0], dtype=np.float64)
        later = np.flatnonzero(~starts)
        if later.size:
            summed = self._summed(self._residuals(states, actions, starts), starts)
            out[later] = self.distance._score(summed[torch.as_tensor(later, device=self.device)], None).double().cpu().numpy()
        return out

    # ------------------------------------------------------------------ fit / score
    def _fit(self, embeddings: None, samples: FitRows, decision_ends: np.ndarray, seed: int, *,
             observations: Mapping[str, Any]) -> None:
        self.key_shapes = {}
        keys = self._keys(observations, "the fit data")
        n = len(samples)
        if any(len(observations[k]) != n for k in keys):
            raise ValueError(f"{self.name}: the fit data's observations and sample batches hold different numbers of decisions")
        rows = max(1, self.chunk_elements // self._row_elements(observations, keys))
        x = torch.as_tensor(np.concatenate([self._features(observations, sl, keys, batched=True) for sl in chunks(n, rows)]),
                            dtype=torch.float64, device=self.device)
        u = torch.empty((n, int(np.prod(self.sample_shape[1:]))), dtype=torch.float64, device=self.device)
        for sl, chunk in samples.chunks(self._fit_chunk_rows()):
            u[sl] = torch.as_tensor(np.asarray(chunk), dtype=torch.float64, device=self.device).mean(dim=1).flatten(1)
        starts = episode_starts(np.asarray(decision_ends, dtype=np.int64), n)
        later = np.flatnonzero(~starts)
        if later.size < 2:
            raise ValueError(f"{self.name} learns how the observation changes from one decision to the next but the fit data "
                             f"holds {later.size} such pair(s); fit on episodes of at least two decisions")
        self.key_shapes = {k: tuple(int(s) for s in observations[k].shape[1:]) for k in keys}
        self._config["keys"] = keys  # the resolved keys are part of the fitted score, as saved
        constant = self._config["constant_scale"]
        self.feature_mean, self.feature_std = fit_standardizer(x, constant_std=constant)
        self.action_mean, self.action_std = fit_standardizer(u, constant_std=constant)
        xs, us = (x - self.feature_mean) / self.feature_std, (u - self.action_mean) / self.action_std
        before, now = torch.as_tensor(later - 1, device=self.device), torch.as_tensor(later, device=self.device)
        inputs, change = torch.cat([xs[before], us[before]], dim=1), xs[now] - xs[before]
        ridge = self._config["ridge"]
        if ridge is None:
            ridge = choose_ridge(inputs, change, np.searchsorted(np.asarray(decision_ends, dtype=np.int64), later, side="right"))
        self.ridge_used = float(ridge)
        self.weight, self.input_mean, self.change_mean = ridge_fit(inputs, change, self.ridge_used)
        residual = self._summed(self._residuals(xs, us, starts), starts)[now]
        self.distance = self._distance().fit(ScoreFitData(residual, None, [residual.shape[0]], seed=seed, device=self.device))

    def reset(self) -> None:
        self._previous, self._recent = None, []

    def _step(self, embedding: None, samples: Any, *, observations: Mapping[str, Any]) -> float:
        keys = self._keys(observations, "the decision")
        with torch.no_grad():
            state, action = self._state_features(observations, None, keys), self._chunk_summary(samples)
            previous, self._previous = self._previous, (state, action)
            if previous is None:
                return 0.0
            residual = self._residuals(torch.cat([previous[0], state]), torch.cat([previous[1], action]), np.array([True, False]))[1:]
            summed = residual + sum(self._recent) if self._recent else residual
            self._recent = (self._recent + [residual])[-(self._config["horizon"] - 1):] if self._config["horizon"] > 1 else []
            return float(self.distance._score(summed, None).double().cpu()[0])

    def step(self, embedding: Any = None, samples: Any = None, *, observation: Mapping[str, Any] | None = None) -> float:
        """Score one decision from its sample batch (B, H, A) and observation {key: one step's array}, against the
        decision before it in this episode (0 at the first; ``reset`` at every episode start)."""
        return ScoreBase.step(self, embedding, samples, observation=observation)

    def step_checked(self, embedding: Any = None, samples: Any = None, *, observation: Mapping[str, Any] | None = None) -> float:
        """``step`` with the samples unchecked (the monitor checked them); the score checks the observation itself."""
        return ScoreBase.step_checked(self, embedding, samples, observation=observation)

    def score_offline(self, embeddings: Any = None, samples: Any = None, decision_ends: Any = None, *,
                      observations: Mapping[str, Any] | None = None) -> np.ndarray:
        """Scores (N,) of every decision from ``samples`` (N, B, H, A) and ``observations`` {key: (N, *shape) rows},
        each against the decision before it in its episode (0 at every episode's first)."""
        keys, n = self._offline_keys(observations)
        if samples is None:
            raise ValueError(f"{self.name} reads the sample batches but none were given to score_offline")
        if len(samples) != n:
            raise ValueError(f"{self.name}: the observations hold {n} decisions but the samples hold {len(samples)}")
        ends = check_decision_ends(self.name, decision_ends, n)
        states = torch.empty((n, self.feature_mean.shape[0]), dtype=torch.float64, device=self.device)
        actions = torch.empty((n, self.action_mean.shape[0]), dtype=torch.float64, device=self.device)
        per_row = self._row_elements(observations, keys) + int(np.prod(self.sample_shape))
        with torch.no_grad():
            for sl in chunks(n, max(1, self.chunk_elements // per_row)):
                states[sl] = self._state_features(observations, sl, keys)
                actions[sl] = self._chunk_summary(self._inputs(None, samples[sl], batched=True)[1])
            return self._residual_scores(states, actions, episode_starts(ends, n))

    # ------------------------------------------------------------------ state
    def _tensors(self) -> dict[str, Tensor]:
        return {**self._observation_tensors(), "feature.mean": self.feature_mean, "feature.std": self.feature_std,
                "action.mean": self.action_mean, "action.std": self.action_std, "model.weight": self.weight,
                "model.input_mean": self.input_mean, "model.change_mean": self.change_mean,
                "model.ridge": torch.tensor(self.ridge_used, dtype=torch.float64, device=self.feature_mean.device)}

    def _load_tensors(self, tensors: Mapping[str, Tensor]) -> None:
        (self.feature_mean, self.feature_std, self.action_mean, self.action_std, self.weight, self.input_mean,
         self.change_mean, ridge) = self._take(tensors, "feature.mean", "feature.std", "action.mean", "action.std", "model.weight",
                                               "model.input_mean", "model.change_mean", "model.ridge")
        self.ridge_used = float(ridge)
        self._load_observation_tensors(tensors, int(self.change_mean.shape[0]))
