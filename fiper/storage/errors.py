"""Errors raised by rollout / demonstration storage."""


class StoreError(ValueError):
    """A store is missing, foreign, truncated, or was given data that does not fit it."""
