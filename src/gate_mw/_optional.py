"""Guard imports of optional dependencies with a message naming the extra to install."""

from __future__ import annotations

import importlib.util

__all__ = ["MissingDependency", "require"]


class MissingDependency(ImportError):
    """An optional dependency of gate_mw is not installed."""


def require(module: str, extra: str) -> None:
    """Raise `MissingDependency` unless `module` can be imported."""
    if importlib.util.find_spec(module) is None:
        raise MissingDependency(
            f"gate_mw.{extra} needs {module}, which is not installed: "
            f"pip install 'gate_mw[{extra}]'"
        )
