"""ScoreBase's terms for a subclass that overrides its hooks: its own ``score_offline`` runs behind ScoreBase's
input checks, and a score that lacks ``_score`` is refused at construction if a ScoreBase path still calls it."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from fiper.scores.inputs import check_decision_ends, chunks


def offline_decisions(score: Any, embeddings: Any, samples: Any, decision_ends: Any) -> int:
    """Decisions in ``score_offline``'s inputs (from ``decision_ends`` for a score that reads neither embeddings nor
    samples), once the score is fitted and ``decision_ends`` is checked to end there."""
    if score.needs - {"observation"}:
        n = score._n_offline(embeddings, samples)
    else:
        score._require_fitted()
        if decision_ends is None:
            raise ValueError(f"{score.name} reads neither embeddings nor samples and counts decisions from decision_ends: "
                             "pass decision_ends (meta/decision_ends)")
        ends = np.asarray(decision_ends)
        n = int(ends[-1]) if ends.ndim == 1 and ends.size and ends.dtype.kind in "iu" else 0
    check_decision_ends(score.name, decision_ends, n)
    return n


def check_offline_rows(score: Any, embeddings: Any, samples: Any, n: int) -> None:
    """Shapes and finite values of the rows the score reads, chunk by chunk (memory bounded like scoring)."""
    if not score.needs & {"embedding", "samples"}:
        return
    for sl in chunks(n, score._chunk_rows()):
        score._convert(embeddings[sl] if "embedding" in score.needs else None,
                       samples[sl] if "samples" in score.needs else None, batched=True, check=True)


def checked_score_offline(own: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
    """``own`` (a subclass's ``score_offline``) behind ScoreBase's input checks, run once per outermost call."""

    @functools.wraps(own)
    def score_offline(self: Any, embeddings: Any = None, samples: Any = None, decision_ends: Any = None, **kwargs: Any) -> np.ndarray:
        if self._offline_checked:  # an outer score_offline of this score checked these inputs already
            return own(self, embeddings, samples, decision_ends, **kwargs)
        self._observed(kwargs.get("observations"), "score_offline's observations")
        check_offline_rows(self, embeddings, samples, offline_decisions(self, embeddings, samples, decision_ends))
        self._offline_checked = True
        try:
            return own(self, embeddings, samples, decision_ends, **kwargs)
        finally:
            self._offline_checked = False

    score_offline.checks_inputs = True  # type: ignore[attr-defined]
    return score_offline


def missing_score(cls: type, base: type) -> list[str]:
    """The paths of ``base`` that would call the ``_score`` ``cls`` lacks (empty if it has one or overrides them)."""
    if cls._score is not base._score:
        return []
    online = cls._step is base._step and (cls.step is base.step or cls.step_checked is base.step_checked)
    return [path for path, uses in (("_step", online), ("score_offline", cls.score_offline is base.score_offline)) if uses]
