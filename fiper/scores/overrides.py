"""ScoreBase's terms for a subclass that overrides its hooks: a score that lacks ``_score`` is refused at
construction if a ScoreBase path still calls it."""

from __future__ import annotations


def missing_score(cls: type, base: type) -> list[str]:
    """The paths of ``base`` that would call the ``_score`` ``cls`` lacks (empty if it has one or overrides them)."""
    if cls._score is not base._score:
        return []
    online = cls._step is base._step and (cls.step is base.step or cls.step_checked is base.step_checked)
    return [path for path, uses in (("_step", online), ("score_offline", cls.score_offline is base.score_offline)) if uses]
