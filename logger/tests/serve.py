"""uvicorn serving the app on a listening socket inherited by descriptor.

``uvicorn --fd`` wraps any descriptor as an AF_UNIX socket, so asyncio does not
set TCP_NODELAY on the connections it accepts from a TCP socket, and every
response written in two segments (headers, then body) waits about 40 ms for
the client's delayed ACK. Here the socket is rebuilt with its real family
(``socket.socket(fileno=...)`` asks the kernel), so the service answers as it
does behind ``--host``/``--port``. Used by tests/server.py. With
``--workers N`` (default: LOGGER_WORKERS, else 1) uvicorn's own supervisor runs
N worker processes on that socket, as ``uvicorn --workers N`` does.

    python -m tests.serve --fd N [--workers N] [--timeout-graceful-shutdown S]
        [--log-level L]
"""

from __future__ import annotations

import argparse
import os
import socket
import sys

import uvicorn
from uvicorn.supervisors import Multiprocess

from app.config import Settings

STARTUP_FAILURE = 3  # uvicorn's exit code when the app fails to start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--timeout-graceful-shutdown", type=int, default=3)
    parser.add_argument("--log-level", default="warning")
    parser.add_argument("--workers", type=int, default=int(os.environ.get("LOGGER_WORKERS", "1")))
    args = parser.parse_args()
    sock = socket.socket(fileno=args.fd)
    config = uvicorn.Config(
        "app.main:create_app",
        factory=True,
        log_level=args.log_level,
        timeout_graceful_shutdown=args.timeout_graceful_shutdown,
        workers=args.workers,
    )
    if args.workers > 1:
        try:  # refused settings stop here, not in every worker uvicorn restarts
            Settings(workers=args.workers)
        except ValueError as exc:
            print(exc, file=sys.stderr)
            return STARTUP_FAILURE
        Multiprocess(config, sockets=[sock]).run()
        return 0
    server = uvicorn.Server(config)
    server.run(sockets=[sock])
    return 0 if server.started else STARTUP_FAILURE


if __name__ == "__main__":
    sys.exit(main())
