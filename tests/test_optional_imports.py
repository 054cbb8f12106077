"""FastAPI and Litestar are optional: gate_mw imports without them, and says what to install.

Each check runs in a fresh interpreter where the import system cannot find the hidden
packages, as if they were not installed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

# Wraps the path-based finder so that it no longer finds the hidden top-level packages:
# what `find_spec` and `import` see when a distribution is not installed.
_HIDE = """
import importlib.machinery
import sys

HIDDEN = set(sys.argv[1].split(","))


class _Hiding:
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name.partition(".")[0] in HIDDEN:
            return None
        return importlib.machinery.PathFinder.find_spec(name, path, target)

    @staticmethod
    def find_distributions(*args, **kwargs):
        for dist in importlib.machinery.PathFinder.find_distributions(*args, **kwargs):
            if dist.metadata["Name"].lower() not in HIDDEN:
                yield dist

    @staticmethod
    def invalidate_caches():
        importlib.machinery.PathFinder.invalidate_caches()


sys.meta_path[:] = [_Hiding if f is importlib.machinery.PathFinder else f for f in sys.meta_path]
"""


def run(code: str, hidden: tuple[str, ...] = ("fastapi", "litestar")) -> dict[str, Any]:
    """Run `code` (which sets a dict `result`) with `hidden` uninstalled; return `result`."""
    script = _HIDE + textwrap.dedent(code) + "\nprint(__import__('json').dumps(result))\n"
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    completed = subprocess.run(
        [sys.executable, "-c", script, ",".join(hidden)],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )
    assert completed.returncode == 0, completed.stderr
    result: dict[str, Any] = json.loads(completed.stdout.splitlines()[-1])
    return result


def test_the_hiding_works() -> None:
    result = run("""
        try:
            import litestar
            result = {"imported": True}
        except ModuleNotFoundError as exc:
            result = {"imported": False, "name": exc.name}
    """)
    assert result == {"imported": False, "name": "litestar"}


def test_gate_mw_imports_and_serves_starlette_without_fastapi_and_litestar() -> None:
    result = run("""
        import sys
        import gate_mw
        import gate_mw.starlette
        import gate_mw.testing
        result = {
            "gateway": gate_mw.Gateway.__name__,
            "get_gate": gate_mw.starlette.get_gate.__name__,
            "loaded": sorted(m for m in sys.modules if m.partition(".")[0] in ("fastapi", "litestar")),
        }
    """)
    assert result == {"gateway": "Gateway", "get_gate": "get_gate", "loaded": []}


@pytest.mark.parametrize(("module", "extra"), [("litestar", "litestar"), ("fastapi", "fastapi")])
def test_an_integration_without_its_framework_names_the_extra(module: str, extra: str) -> None:
    result = run(f"""
        from gate_mw._optional import MissingDependency
        try:
            import gate_mw.{module}
            result = {{"raised": None}}
        except MissingDependency as exc:
            result = {{
                "raised": type(exc).__name__, "message": str(exc),
                "import_error": isinstance(exc, ImportError),
            }}
    """)
    assert result["raised"] == "MissingDependency"
    assert result["import_error"] is True
    assert f"pip install 'gate_mw[{extra}]'" in result["message"]
    assert f"gate_mw.{module} needs {module}" in result["message"]


def test_importing_gate_mw_loads_no_framework_even_when_installed() -> None:
    result = run("""
        import sys
        import gate_mw
        result = {"loaded": sorted(m for m in sys.modules if m.partition(".")[0] in ("fastapi", "litestar"))}
    """, hidden=())
    assert result == {"loaded": []}
