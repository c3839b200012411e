"""Run uvicorn on an inherited listening TCP socket:  python uvicorn_fd.py FD APP

Not ``uvicorn --fd``: it wraps the descriptor as an AF_UNIX socket (uvicorn 0.54), so asyncio
never sets TCP_NODELAY on the accepted connections, and Nagle's algorithm with delayed ACKs
caps a keep-alive benchmark at a few hundred requests per second. ``socket.socket(fileno=)``
reads the real family from the descriptor.
"""

from __future__ import annotations

import socket
import sys

import uvicorn

if __name__ == "__main__":
    fd, app = int(sys.argv[1]), sys.argv[2]
    listener = socket.socket(fileno=fd)
    config = uvicorn.Config(app, log_level="warning", access_log=False)
    uvicorn.Server(config).run(sockets=[listener])
