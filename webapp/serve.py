"""The web server: uvicorn serving webapp.asgi, on a host and port or on an already bound socket.

`python -m webapp.serve --host H --port P` or `--fd N`. Not uvicorn's own `--fd`: it wraps the descriptor
as an AF_UNIX socket whatever it is, so asyncio never sets TCP_NODELAY on the TCP connections it accepts,
and every response after the first on a kept-alive connection waits ~40 ms for the client's delayed ACK
(Nagle holds the body behind the headers). Here the socket's real family is read from the descriptor.
"""

from __future__ import annotations

import argparse
import socket

import uvicorn

from webapp import heap


def config() -> uvicorn.Config:
    # Request bodies go to Django as they arrive (it spools them to disk): a multi-GB upload never sits in memory.
    # A stop (Ctrl-C, SIGTERM) waits for open requests and sockets at most 10 s, then cancels them.
    return uvicorn.Config("webapp.asgi:application", ws="websockets-sansio", lifespan="off", proxy_headers=True,
                          access_log=False, timeout_graceful_shutdown=10)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m webapp.serve")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--fd", type=int, help="serve on this already bound, listening socket")
    args = parser.parse_args(argv)
    heap.keep_freed_memory()  # a relay's parts reuse the heap's pages (webapp/heap.py)
    cfg = config()
    if args.fd is None:
        cfg.host, cfg.port = args.host, args.port
    # Import the app here, outside the event loop: its start-up work (webapp/asgi.py's transfer sweep) uses the
    # ORM, which refuses to run inside one.
    cfg.load()
    if args.fd is None:
        uvicorn.Server(cfg).run()
        return
    sock = socket.socket(fileno=args.fd)  # family and type come from the descriptor itself
    uvicorn.Server(cfg).run(sockets=[sock])


if __name__ == "__main__":
    main()
