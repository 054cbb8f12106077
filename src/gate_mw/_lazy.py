"""Names of a package that load from their module on first use (PEP 562).

A package's `__init__` lists where each public name lives; importing one of its modules
then loads only that module, not every sibling the package re-exports.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, namespace: dict[str, Any], exports: Mapping[str, tuple[str, ...]],
    *, submodules: bool = False,
) -> Callable[[str], Any]:
    """The `__getattr__` of `package` (whose globals are `namespace`), loading each name of
    `exports` (module -> names) from its module when first asked for; with `submodules`,
    any other public name that is a submodule loads as one (`package.config`)."""
    homes = {name: module for module, names in exports.items() for name in names}

    def __getattr__(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            if submodules and not name.startswith("_"):
                try:
                    return importlib.import_module(f".{name}", package)
                except ModuleNotFoundError as exc:
                    if exc.name != f"{package}.{name}":
                        raise
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(home, package), name)
        namespace[name] = value  # later lookups are plain attribute reads
        return value

    return __getattr__
