"""Check a score of your own against the FailureScore contract before the monitor relies on it.

``check_score("my_scores:ChunkSpread", data)`` fits the score on ``data`` and checks what fiper's own
scores are tested for (tests/scores/test_contract.py): one finite float per decision, online ``step``
equal to ``score_offline`` (with a ``reset`` at every episode start), a deterministic fit for one seed,
and a bit-identical ``state`` round trip through safetensors and json.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np
from safetensors.torch import load, save

from fiper.scores.base import FailureScore, ScoreFitData


class ScoreContractError(AssertionError):
    """A score breaks the FailureScore contract; the message names the property and the decision."""


def _inputs(score: FailureScore, data: ScoreFitData) -> tuple[Any, Any, dict[str, Any]]:
    emb = data.embeddings if "embedding" in score.needs else None
    smp = data.samples if "samples" in score.needs else None
    return emb, smp, ({"observations": data.observations} if "observation" in score.needs else {})


def offline_scores(score: FailureScore, data: ScoreFitData) -> np.ndarray:
    """``score_offline`` over every decision of ``data``."""
    emb, smp, seen = _inputs(score, data)
    return np.asarray(score.score_offline(emb, smp, data.decision_ends, **seen))


def online_scores(score: FailureScore, data: ScoreFitData) -> np.ndarray:
    """``step`` decision by decision over ``data``, ``reset`` at every episode start."""
    emb, smp, seen = _inputs(score, data)
    observations: Mapping[str, Any] = seen.get("observations", {})
    out, start = [], 0
    for end in np.asarray(data.decision_ends):
        score.reset()
        for i in range(start, int(end)):
            kw = {"observation": {k: np.asarray(v[i : i + 1])[0] for k, v in observations.items()}} if seen else {}
            out.append(score.step(None if emb is None else emb[i], None if smp is None else smp[i], **kw))
        start = int(end)
    return np.asarray(out, dtype=np.float64)


def _first_difference(a: np.ndarray, b: np.ndarray, rtol: float, atol: float) -> int:
    return int(np.flatnonzero(~np.isclose(a, b, rtol=rtol, atol=atol, equal_nan=False))[0])


def check_score(score: str, data: ScoreFitData, *, params: Mapping[str, Any] | None = None, rtol: float = 1e-5,
                atol: float = 1e-5) -> np.ndarray:
    """Fit ``score`` (registry name or ``'<module>:<Class>'``, with ``params``) on ``data`` and check the
    contract; returns its offline scores, or raises ScoreContractError naming what failed."""
    from fiper.scores.registry import make_score, score_from_state  # the registry imports this module while it discovers scores

    params = dict(params or {})
    fitted = make_score(score, **params).fit(data)
    n = int(np.asarray(data.decision_ends)[-1])
    offline = offline_scores(fitted, data)
    if offline.shape != (n,):
        raise ScoreContractError(f"{score}: score_offline returned shape {offline.shape} for {n} decisions; return one number per decision")
    if not np.isfinite(offline).all():
        bad = int(np.flatnonzero(~np.isfinite(offline))[0])
        raise ScoreContractError(f"{score}: score_offline is {offline[bad]} at decision {bad} of the fit data; a score must be finite "
                                 "on in-distribution decisions")
    online = online_scores(fitted, data)
    if not np.allclose(online, offline, rtol=rtol, atol=atol):
        i = _first_difference(online, offline, rtol, atol)
        raise ScoreContractError(f"{score}: step gives {online[i]} but score_offline {offline[i]} at decision {i}; online and offline "
                                 "must agree (a score with history: reset it in reset() and restart it at every episode start offline)")
    again = offline_scores(make_score(score, **params).fit(data), data)
    if not np.array_equal(again, offline):
        i = _first_difference(again, offline, 0.0, 0.0)
        raise ScoreContractError(f"{score}: a second fit with seed {data.seed} scores decision {i} {again[i]} instead of {offline[i]}; "
                                 "draw every random number of the fit from its seed")
    tensors, config = fitted.state()
    loaded = score_from_state(load(save(tensors)), json.loads(json.dumps(config)))
    restored = offline_scores(loaded, data)
    if not np.array_equal(restored, offline):
        i = _first_difference(restored, offline, 0.0, 0.0)
        raise ScoreContractError(f"{score}: after state() / from_state decision {i} scores {restored[i]} instead of {offline[i]}; save "
                                 "every fitted value in _tensors() and restore it in _load_tensors()")
    return offline
