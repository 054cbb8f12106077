"""Serve the Litestar example and watch the gateway route, fall back and count cost.

    python -m examples.litestar_app.demo   # from the repository root, or ./scripts/demo litestar
"""

from __future__ import annotations

import sys

from examples._demo import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], default="litestar"))
