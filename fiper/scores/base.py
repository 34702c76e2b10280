"""The failure-score contract (``FailureScore``), its fit data (``ScoreFitData``, fiper.scores.fit_data), and the shared
implementation base.

Every score reads only the per-decision pair the monitor already has: the policy embedding
z (D,) and the batch of B sampled action chunks (B, H, A) in env units. No score calls the policy.

Life cycle::

    score = make_score("rnd_oe", **cfg)          # constructor validates its config
    score.fit(ScoreFitData(embeddings, samples, decision_ends, seed=0, device="cpu"))
    score.reset()                                # at every episode start
    s_t = score.step(z_t, chunks_t)              # online, one float per decision
    s = score.score_offline(Z, S, decision_ends) # a whole store at once, equal to step() to 1e-5
    tensors, config = score.state()              # safetensors-able tensors + json-able config
    score = type(score).from_state(tensors, config)
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor

from fiper.scores.fit_data import ScoreFitData
from fiper.scores.inputs import FitRows, as_array, as_tensor, check_finite, check_scores, check_shape, chunks
from fiper.scores.overrides import checked_score_offline, missing_score, offline_decisions

NEEDS = frozenset({"embedding", "samples", "observation"})


class ScoreNotFittedError(RuntimeError):
    """A score was asked to score before ``fit`` or ``from_state`` gave it its constants."""


@runtime_checkable
class FailureScore(Protocol):
    """What the monitor needs from a failure score (implement it to plug in your own)."""

    name: str
    needs: frozenset[str]  # subset of NEEDS: inputs the score reads (may be empty; "observation": see fiper/scores/obs_novelty.py)
    embedding_dim: int | None  # D it was fitted for (None if it does not read embeddings)
    sample_shape: tuple[int, int, int] | None  # (B, H, A) it was fitted for (None if it does not read samples)
    fitted: bool  # True once fit() or from_state() gave it its constants
    config: dict[str, Any]  # constructor arguments (json-able): what a MonitorSpec records

    def fit(self, data: ScoreFitData) -> FailureScore: ...

    def reset(self) -> None: ...

    def step(self, embedding: Tensor | None, samples: Tensor | None) -> float: ...

    def step_checked(self, embedding: Tensor | None, samples: Tensor | None) -> float:
        """``step`` for inputs the monitor has already checked (shapes, finite values)."""
        ...

    def to(self, device: str | torch.device) -> FailureScore: ...

    def score_offline(self, embeddings: Any, samples: Any, decision_ends: Any) -> np.ndarray: ...

    def state(self) -> tuple[dict[str, Tensor], dict[str, Any]]: ...

    @classmethod
    def from_state(cls, tensors: Mapping[str, Tensor], config: Mapping[str, Any], *, device: str | torch.device = "cpu") -> FailureScore: ...


class ScoreBase(ABC):
    """Shared machinery of fiper's scores: input checks, chunked offline scoring, state round trip.

    A subclass sets ``name``, ``needs`` and ``dtype`` and implements ``_fit``, ``_score`` (a batch
    of decisions -> (n,) scores), ``_tensors`` and ``_load_tensors``; a score that reads the raw
    observation gets it as ``observations={key: (n, *shape)}`` in both. Stateless scores get
    ``step`` and ``score_offline`` for free; scores with history override ``_step`` and
    ``score_offline`` and need no ``_score``. An overriding ``score_offline`` gets its inputs checked
    first (fitted, shapes, finite values, decision_ends) unless its class sets ``checks_offline_inputs``.
    ``backend = "numpy"`` hands ``_fit`` / ``_score`` host numpy arrays instead of tensors (for scores
    whose work is small-array bookkeeping, e.g. ACE's histogram).
    """

    name: ClassVar[str]
    needs: ClassVar[frozenset[str]]
    dtype: ClassVar[torch.dtype] = torch.float32
    backend: ClassVar[str] = "torch"  # or "numpy"
    chunk_elements: ClassVar[int] = 1 << 22  # input elements per offline chunk (bounds memory)
    # True: ``_fit`` gets the sample batches as a FitRows (read and checked chunk by chunk) instead of
    # one tensor, so a score that keeps only a summary of them fits in memory bounded by a chunk.
    streams_fit_samples: ClassVar[bool] = False
    # True in a class whose own score_offline checks its inputs (fiper's do, through _inputs): ScoreBase does not.
    checks_offline_inputs: ClassVar[bool] = False
    _offline_checked = False  # True while an overriding score_offline runs on inputs ScoreBase checked

    def __init_subclass__(cls, **kwargs: Any):
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("score_offline")
        if (callable(own) and own is not ScoreBase.__dict__["score_offline"] and not getattr(own, "checks_inputs", False)
                and not cls.__dict__.get("checks_offline_inputs", False)):
            cls.score_offline = checked_score_offline(own)

    def __init__(self, **config: Any):
        uses = missing_score(type(self), ScoreBase)
        if uses:
            raise TypeError(f"{type(self).__name__} does not implement _score(embeddings, samples) -> (n,) scores, which "
                            f"ScoreBase's {' and '.join(uses)} call: implement _score, or override _step and score_offline "
                            "(a score with history)")
        self._config = copy.deepcopy(config)
        self.device = torch.device("cpu")
        self.embedding_dim: int | None = None
        self.sample_shape: tuple[int, int, int] | None = None
        self.fitted = False

    # ------------------------------------------------------------------ subclass hooks
    @abstractmethod
    def _fit(self, embeddings: Tensor | None, samples: Tensor | None, decision_ends: np.ndarray, seed: int) -> None:
        """Fit models / constants on validated fit tensors (on ``self.device``, ``self.dtype``); a score
        that reads the observation also gets ``observations={key: (N, *shape)}`` (lazy: slice it)."""

    # _score(embeddings (n, D), samples (n, B, H, A), already validated; observations={key: (n, *shape)} host arrays,
    # unchecked, for a score that reads them) -> scores (n,). A score with history that overrides _step and
    # score_offline needs none: construction refuses a score lacking it where ScoreBase would call it.
    _score: ClassVar[Callable[..., Tensor] | None] = None

    def _tensors(self) -> dict[str, Tensor]:
        return {}

    def _load_tensors(self, tensors: Mapping[str, Tensor]) -> None:
        return None

    # ------------------------------------------------------------------ public API
    @property
    def config(self) -> dict[str, Any]:
        """The constructor arguments (json-able); ``type(self)(**score.config)`` rebuilds it unfitted."""
        return copy.deepcopy(self._config)

    def _check_unshadowed(self) -> None:
        """Refuse an instance attribute hiding a public method of ScoreBase (``self.step = 0``): offline scoring
        would work while whatever calls that method (``check_score``'s ``step``, the monitor's ``reset``, ``to``,
        ``state`` when saving) would call the attribute instead."""
        hidden = sorted(n for n in vars(self) if not n.startswith("_") and n in PUBLIC_API)
        if hidden:
            raise TypeError(f"{type(self).__name__} sets the attribute(s) {hidden}, hiding ScoreBase's "
                            f"{', '.join(n + '()' for n in hidden)}, which check_score, the monitor and saving call. Rename the attribute(s) "
                            f"(e.g. self._{hidden[0]}); a constructor argument may keep its name")

    def fit(self, data: ScoreFitData) -> ScoreBase:
        """Fit the score's models / constants on in-distribution decisions; returns self."""
        if not isinstance(data, ScoreFitData):
            raise TypeError(f"{self.name}.fit expects a ScoreFitData, got {type(data).__name__}")
        self._check_unshadowed()
        self.device = data.device
        emb = samples = None
        if "embedding" in self.needs:
            if data.embeddings is None:
                raise ValueError(f"{self.name} reads embeddings but ScoreFitData.embeddings is None; load decisions/embedding")
            emb = self._as("fit embeddings", data.embeddings)
            check_finite(self.name, "fit embeddings", emb)
            self.embedding_dim = int(emb.shape[1])
        if "samples" in self.needs:
            if data.samples is None:
                raise ValueError(f"{self.name} reads sample batches but ScoreFitData.samples is None; load decisions/samples")
            if self.streams_fit_samples:
                samples = FitRows(self.name, data.samples, lambda value: self._as("fit samples", value))
            else:
                samples = self._as("fit samples", data.samples)
                check_finite(self.name, "fit samples", samples)
            self.sample_shape = tuple(int(s) for s in samples.shape[1:])
        self._check_fit_shapes()
        seen = self._observed(data.observations, "ScoreFitData.observations (ScoreFitData.from_store(store, observations=True))")
        self._fit(emb, samples, data.decision_ends, int(data.seed), **seen)
        if isinstance(samples, FitRows):  # a score that read no (or not every) batch still refuses non-finite ones
            samples.check_all(self._fit_chunk_rows())
        # Hold the fitted tensors exactly as from_state will (contiguous, fresh memory), so a
        # saved and re-loaded score computes bit-identical outputs.
        self._load_tensors({k: v.detach().contiguous().clone() for k, v in self._tensors().items()})
        self.fitted = True
        self.reset()
        return self

    def reset(self) -> None:
        """Forget per-episode history (stateless scores have none)."""
        return None

    def step(self, embedding: Any = None, samples: Any = None, *, observation: Mapping[str, Any] | None = None) -> float:
        """Score one decision from its embedding (D,), sample batch (B, H, A) and, for a score that
        reads it, its observation {key: one step's array}."""
        return self._step(*self._inputs(embedding, samples, batched=False), **self._observed(observation, "the decision", row=True))

    def step_checked(self, embedding: Any = None, samples: Any = None, *, observation: Mapping[str, Any] | None = None) -> float:
        """``step`` for inputs the caller has already checked (shapes, finite values): the monitor
        validates each decision once, not once per score. Unchecked input gives undefined scores."""
        self._require_fitted()
        return self._step(*self._convert(embedding, samples, batched=False), **self._observed(observation, "the decision", row=True))

    def _step(self, embedding: Any, samples: Any, **observed: Any) -> float:
        """One decision's score from converted inputs (1, D) and (1, B, H, A); scores with history override it."""
        with torch.no_grad():
            return float(check_scores(self.name, self._score(embedding, samples, **observed), 1)[0])

    def score_offline(self, embeddings: Any = None, samples: Any = None, decision_ends: Any = None, *,
                      observations: Mapping[str, Any] | None = None) -> np.ndarray:
        """Scores (N,) of every decision of a store, vectorised in memory-bounded chunks."""
        seen = self._observed(observations, "score_offline's observations")
        n = offline_decisions(self, embeddings, samples, decision_ends)
        out = np.empty(n, dtype=np.float64)
        with torch.no_grad():
            for sl in chunks(n, self._chunk_rows()):
                emb, smp = self._inputs(
                    embeddings[sl] if "embedding" in self.needs else None,
                    samples[sl] if "samples" in self.needs else None,
                    batched=True,
                )
                part = {"observations": {k: v[sl] for k, v in seen["observations"].items()}} if seen else {}
                out[sl] = check_scores(self.name, self._score(emb, smp, **part), sl.stop - sl.start)
        return out

    def state(self) -> tuple[dict[str, Tensor], dict[str, Any]]:
        """Fitted tensors (CPU, contiguous) and a json-able config that ``from_state`` restores."""
        self._require_fitted()
        tensors = {k: v.detach().cpu().contiguous() for k, v in self._tensors().items()}
        config = {
            "name": self.name,
            "params": self.config,
            "embedding_dim": self.embedding_dim,
            "sample_shape": list(self.sample_shape) if self.sample_shape is not None else None,
        }
        return tensors, config

    @classmethod
    def from_state(cls, tensors: Mapping[str, Tensor], config: Mapping[str, Any], *, device: str | torch.device = "cpu") -> ScoreBase:
        """Rebuild a fitted score from ``state()``'s output, on ``device``."""
        if config.get("name") != cls.name:
            raise ValueError(f"state of score {config.get('name')!r} cannot be loaded into {cls.__name__} ({cls.name!r})")
        score = cls(**dict(config.get("params", {})))
        score._check_unshadowed()
        score.device = torch.device(device)
        score.embedding_dim = None if config.get("embedding_dim") is None else int(config["embedding_dim"])
        shape = config.get("sample_shape")
        score.sample_shape = None if shape is None else tuple(int(s) for s in shape)
        score._load_tensors({k: torch.as_tensor(v).to(score.device).clone() for k, v in tensors.items()})  # fresh, aligned memory
        score.fitted = True
        score.reset()
        return score

    def to(self, device: str | torch.device) -> ScoreBase:
        """Move the fitted score to ``device`` (returns self)."""
        tensors = self._tensors() if self.fitted else {}
        self.device = torch.device(device)
        if self.fitted:
            self._load_tensors({k: v.to(self.device) for k, v in tensors.items()})
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._config.items())
        return f"{type(self).__name__}({args})"

    # ------------------------------------------------------------------ helpers
    def _check_fit_shapes(self) -> None:
        """Hook: refuse fit data whose shapes contradict the config (e.g. dims beyond A)."""
        return None

    def _take(self, tensors: Mapping[str, Tensor], *keys: str) -> list[Tensor]:
        """The named saved tensors, or a ValueError listing what is missing from the state."""
        missing = [k for k in keys if k not in tensors]
        if missing:
            raise ValueError(f"{self.name}: saved state lacks tensors {missing} (has {sorted(tensors)}); save it with state()")
        return [tensors[k] for k in keys]

    def _require_fitted(self) -> None:
        if not self.fitted:
            raise ScoreNotFittedError(f"{self.name} is not fitted: call fit(ScoreFitData(...)) or load it with from_state")

    def _fit_chunk_rows(self) -> int:
        """Decisions per chunk of streamed fit samples (``chunk_elements`` input elements)."""
        return max(1, self.chunk_elements // max(1, int(np.prod(self.sample_shape))))

    def _chunk_rows(self) -> int:
        per_row = 1
        if "embedding" in self.needs and self.embedding_dim:
            per_row += self.embedding_dim
        if "samples" in self.needs and self.sample_shape:
            per_row += int(np.prod(self.sample_shape))
        return max(1, self.chunk_elements // per_row)

    def _n_offline(self, embeddings: Any, samples: Any) -> int:
        """Decisions in the inputs the score reads (a score that reads neither overrides score_offline)."""
        self._require_fitted()
        n = None
        for what, value, need in (("embeddings", embeddings, "embedding"), ("samples", samples, "samples")):
            if need not in self.needs:
                continue
            if value is None:
                raise ValueError(f"{self.name} reads {what} but none were given to score_offline")
            if n is not None and value.shape[0] != n:
                raise ValueError(f"{self.name}: embeddings hold {n} decisions but samples hold {value.shape[0]}")
            n = int(value.shape[0])
        return int(n)

    def _as(self, what: str, value: Any) -> Any:
        """``value`` in the score's backend: a ``dtype`` tensor on ``device``, or a host numpy array as given."""
        if self.backend == "numpy":
            return as_array(self.name, what, value)  # the score casts what it reads
        return as_tensor(self.name, what, value, device=self.device, dtype=self.dtype)

    def _convert(self, embedding: Any, samples: Any, *, batched: bool, check: bool = False) -> tuple[Any, Any]:
        """The inputs the score reads, in its backend with a leading decision axis (None for the
        others); ``check`` refuses wrong shapes and non-finite values first."""
        out = []
        for what, value, label, shape in (("embedding", embedding, "embedding", (self.embedding_dim,)),
                                          ("samples", samples, "sample batch", self.sample_shape)):
            if what not in self.needs:
                out.append(None)
                continue
            if value is None:
                raise ValueError(f"{self.name} reads the {label} but none was given")
            x = self._as(what, value)
            if check:
                check_shape(self.name, what, x, ((None,) if batched else ()) + tuple(shape))
                check_finite(self.name, what, x)
            out.append(x if batched else x[None])
        return out[0], out[1]

    def _observed(self, observations: Any, what: str, row: bool = False) -> dict[str, Any]:
        """``{"observations": {key: rows}}`` for a score that reads the raw observation (one step's
        arrays get a leading decision axis with ``row``), else nothing; None is refused naming ``what``."""
        if "observation" not in self.needs:
            return {}
        if not isinstance(observations, Mapping):
            raise ValueError(f"{self.name} reads the raw observation but {what} holds "
                             f"{'none' if observations is None else type(observations).__name__}; give a mapping "
                             "{key: array} (online: FailureMonitor.step(..., observation=obs))")
        return {"observations": {k: np.asarray(v)[None] if row else v for k, v in observations.items()}}

    def _inputs(self, embedding: Any, samples: Any, *, batched: bool) -> tuple[Any, Any]:
        """Validated inputs: (1 or n, D) embeddings and (1 or n, B, H, A) samples for ``_score`` (checked once:
        inside an overriding ``score_offline`` ScoreBase has checked them already)."""
        self._require_fitted()
        return self._convert(embedding, samples, batched=batched, check=not self._offline_checked)


PUBLIC_API = frozenset(n for n, v in vars(ScoreBase).items() if not n.startswith("_") and (callable(v) or isinstance(v, (property, classmethod))))
