"""Fixtures for the environment tests."""

from __future__ import annotations

import pytest

import envs


@pytest.fixture(params=sorted(envs.TASKS))
def task(request) -> str:
    """Each registered task's short name."""
    return request.param
