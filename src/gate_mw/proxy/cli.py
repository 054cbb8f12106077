"""`gate-mw serve [CONFIG]`: the proxy as a standalone server, like `litellm --config`.

    gate-mw serve config.yaml --port 4000 --workers 2

CONFIG is a gateway file or a LiteLLM `config.yaml`; without one the simulated models are
served, so `gate-mw serve` answers out of the box. Needs the `proxy` extra (uvicorn).
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .._heap import settle_heap
from ..errors import ConfigError
from ._app import ProxyApp
from ._core import Proxy
from ._uvicorn import HTTP_PROTOCOL

if TYPE_CHECKING:
    from collections.abc import Iterator

    from ..gateway import Gateway

__all__ = ["app_from_env", "build_app", "main", "worker_app"]

#: How the serving process tells its workers which file to load ("" for none).
CONFIG_ENV = "GATE_MW_SERVE_CONFIG"


def build_app(target: Gateway | Proxy) -> ProxyApp:
    """The standalone proxy app: the endpoints at `/v1` and at the root (where LiteLLM
    clients also call), each request's routing context, and the gateway's lifespan."""
    return ProxyApp(target if isinstance(target, Proxy) else Proxy(target))


def _load(config: str | None) -> Gateway:
    from ..gateway import Gateway  # the composition root: the one place that builds one

    return Gateway.from_file(config) if config else Gateway()


def app_from_env() -> ProxyApp:
    """The app of a worker process (`--workers`, `--reload`): the file named in the
    environment, loaded again without repeating the warnings the parent printed."""
    quiet = logging.getLogger("gate_mw.config")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        return build_app(_load(os.environ.get(CONFIG_ENV) or None))
    finally:
        quiet.setLevel(level)


def worker_app() -> ProxyApp:
    """`app_from_env` for a worker process, its heap settled for serving."""
    app = app_from_env()
    settle_heap()
    return app


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gate-mw", description="gate_mw command line.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve",
        help="serve the OpenAI- and Anthropic-compatible proxy",
        description="Serve /v1/chat/completions, /v1/messages and /v1/models over a gateway file or a "
        "LiteLLM config.yaml (the simulated models without one).",
    )
    serve.add_argument("config", nargs="?", help="gateway file (.yaml/.json) or LiteLLM config.yaml")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=4000, help="port (default 4000; 0 picks a free one)")
    serve.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    serve.add_argument("--reload", action="store_true", help="restart when the code changes (development)")
    serve.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )
    # Off by default: a formatted line per request is CPU and I/O on the server's hot path,
    # and spans, metrics and the insights store record every call already. X-Forwarded-For
    # is read only for this log: the proxy itself uses neither client address nor scheme.
    serve.add_argument("--access-log", action="store_true", help="log every request (uvicorn's access log)")
    return parser


def _lines(gateway: Gateway, proxy: Proxy, url: str) -> Iterator[str]:
    yield f"gate-mw: serving on {url}/v1 (OpenAI: {url}/v1/chat/completions, Anthropic: {url}/v1/messages)"
    for name in proxy.available(None):
        deployments = gateway.registry.by_alias.get(name)
        if deployments:
            where = ", ".join(f"{d.entry.provider}:{d.upstream_model}" for d in deployments)
        else:
            where = "policy: " + " -> ".join(gateway.policies[name].models)
        yield f"  model {name:<24} {where}"
    yield "  keys: " + ("required" if proxy.require_key else "not required (open)")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    try:
        import uvicorn
    except ImportError:
        print("gate-mw serve needs uvicorn: pip install 'gate_mw[proxy]'", file=sys.stderr)
        return 2
    try:
        gateway = _load(args.config)
        proxy = Proxy(gateway)
    except ConfigError as exc:
        print(f"gate-mw: {exc}", file=sys.stderr)
        return 2
    # Bound here, so the printed address is the real one even for --port 0.
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    # Listening before uvicorn starts: a client that connects as soon as the address is
    # printed waits in the backlog instead of being refused.
    sock.listen(2048)
    port = sock.getsockname()[1]
    host = f"[{args.host}]" if family == socket.AF_INET6 else args.host
    for line in _lines(gateway, proxy, f"http://{host}:{port}"):
        print(line, flush=True)
    if args.workers == 1 and not args.reload:
        config = uvicorn.Config(
            build_app(proxy), log_level=args.log_level, lifespan="on", ws="none", access_log=args.access_log,
            proxy_headers=args.access_log, http=HTTP_PROTOCOL,
        )
        settle_heap()
        uvicorn.Server(config).run(sockets=[sock])
        return 0
    sock.close()
    os.environ[CONFIG_ENV] = args.config or ""
    uvicorn.run(
        "gate_mw.proxy.cli:worker_app",
        factory=True,
        host=args.host,
        port=port,
        workers=args.workers,
        reload=args.reload,
        log_level=args.log_level,
        lifespan="on",
        access_log=args.access_log,
        proxy_headers=args.access_log,
        http=HTTP_PROTOCOL,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
