"""A small HTTP/1.1 load generator, used when ``wrk`` is not installed.

    python loadgen.py http://127.0.0.1:PORT/v1/models SECONDS CONNECTIONS [Header: value]...

Prints one line: ``requests=N seconds=S errors=E``. Each connection sends a request, reads the
whole response (Content-Length bodies) and sends the next; a server that closes the connection
(gunicorn's sync worker does after every response) gets a new one. It is slower than wrk, so
with one server process it may measure itself as much as the server: compare bare and
geofence runs with each other, never with wrk figures.
"""

from __future__ import annotations

import asyncio
import sys
import time
from urllib.parse import urlsplit


async def _connection(
    host: str, port: int, request: bytes, deadline: float, counts: list[int]
) -> None:
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    while time.monotonic() < deadline:
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection(host, port)
            assert reader is not None
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            close = False
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"connection" and value.strip().lower() == b"close":
                    close = True
            await reader.readexactly(length)
            counts[0] += 1
            if close:
                writer.close()
                writer = None
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            counts[1] += 1
            if writer is not None:
                writer.close()
            writer = None
    if writer is not None:
        writer.close()


async def main(url: str, seconds: float, connections: int, headers: list[str]) -> str:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    lines = [f"GET {parts.path or '/'} HTTP/1.1", f"Host: {host}:{port}", *headers]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    counts = [0, 0]  # responses, errors
    started = time.monotonic()
    deadline = started + seconds
    await asyncio.gather(
        *(_connection(host, port, request, deadline, counts) for _ in range(connections))
    )
    took = time.monotonic() - started
    return f"requests={counts[0]} seconds={took:.3f} errors={counts[1]}"


if __name__ == "__main__":
    url, seconds, connections, *extra = sys.argv[1:]
    print(asyncio.run(main(url, float(seconds), int(connections), extra)))
