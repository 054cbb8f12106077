"""pytest plugin: ``pytest_plugins = ["gate_mw.testing.pytest_plugin"]`` adds ``fake_upstream``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from ._upstream import FakeUpstream

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["fake_upstream"]


@pytest.fixture
def fake_upstream() -> Iterator[FakeUpstream]:
    """A running :class:`FakeUpstream`, fresh for each test and stopped after it."""
    with FakeUpstream() as upstream:
        yield upstream
