"""`freshrec api`: run the HTTP service (freshrec.api) on uvicorn."""

from __future__ import annotations

import socket
import sys

from freshrec.errors import ConfigError
from freshrec.settings import Settings


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, opened before anything loads, so a taken port is one sentence, not a traceback."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ConfigError(f"Cannot resolve the API host {host!r} ({exc.strerror}): set --host or "
                          "FRESHREC_API_HOST to an address of this machine, e.g. 127.0.0.1 or 0.0.0.0.") from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"Cannot listen on {host}:{port} ({exc.strerror}): stop what uses that port or choose "
                          "another with --port (FRESHREC_API_PORT).") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def serve_api(settings: Settings, engine) -> None:
    """Serve until SIGINT/SIGTERM (uvicorn's own handling: open requests finish, then the watcher stops)."""
    import uvicorn

    from freshrec.api import create_app

    sock = bind(settings.api_host, settings.api_port)
    app = create_app(engine, consumer=settings.consumer, stall_after_s=settings.horizon_stall_s,
                     max_candidates=settings.api_max_candidates,
                     catalogue_refresh_s=settings.api_catalogue_refresh_s,
                     allowed_base_models=settings.base_models_allowed)
    print(f"freshrec api on http://{settings.api_host}:{settings.api_port} (Ctrl-C stops)", file=sys.stderr,
          flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="info", access_log=False, timeout_graceful_shutdown=10))
    server.run(sockets=[sock])
