#!/usr/bin/env python3
"""Alert sinks for the stack suite's drill: where Alertmanager delivers.

smtp HOST DIR: an SMTP server (aiosmtpd) on HOST, on a port the kernel picks;
    each message received is written to DIR as mail-N.eml.
http HOST DIR: an HTTP server on HOST, port picked the same way; each POST
    body is written to DIR as <first path segment>-N.json (so /chat and
    /watchdog land apart) and answered 200.

Each prints "HOST:PORT" on its first line of stdout once it listens, then
serves until killed. Files are written under a temporary name and renamed,
so a reader never sees half a message.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


def store(directory: Path, name: str, data: bytes) -> None:
    tmp = directory / f".{name}.tmp"
    tmp.write_bytes(data)
    os.replace(tmp, directory / name)


def announce(host: str, port: int) -> None:
    print(f"{host}:{port}", flush=True)


class MailHandler:
    """aiosmtpd handler: keeps every message's raw content."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.counter = itertools.count(1)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd's name)
        store(self.directory, f"mail-{next(self.counter)}.eml", envelope.original_content)
        return "250 Message accepted for delivery"


async def serve_smtp(host: str, directory: Path) -> None:
    from aiosmtpd.smtp import SMTP

    handler = MailHandler(directory)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(handler), host, 0)
    announce(host, server.sockets[0].getsockname()[1])
    async with server:
        await server.serve_forever()


def serve_http(host: str, directory: Path) -> None:
    counter = itertools.count(1)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            kind = self.path.strip("/").split("/")[0] or "root"
            with lock:
                n = next(counter)
            store(directory, f"{kind}-{n}.json", body)
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            sys.stderr.write(f"sink: {self.command} {self.path}\n")

    server = ThreadingHTTPServer((host, 0), Handler)
    announce(host, server.server_address[1])
    server.serve_forever()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["smtp", "http"])
    parser.add_argument("host")
    parser.add_argument("directory", type=Path)
    args = parser.parse_args()
    args.directory.mkdir(parents=True, exist_ok=True)
    if args.kind == "smtp":
        asyncio.run(serve_smtp(args.host, args.directory))
    else:
        serve_http(args.host, args.directory)
    return 0


if __name__ == "__main__":
    sys.exit(main())
