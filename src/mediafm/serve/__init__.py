"""The explorer: a local web app over a store, a model's predictions and search.

``catalog.Catalog`` computes what is shown, as calls into the library (no web code);
``app.create_app`` is the FastAPI app (JSON API + the static page in ``static/``); ``serve``
runs it under uvicorn on a socket bound before anything is printed, in this process or
(``--workers N``) in N processes forked once the catalog is loaded (``serve_forked``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on (host, port), or an ``OSError`` that says the port is taken:
    bound before the URL is printed, so the URL printed is always ours."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port} ({e.strerror}): another server may "
                      "hold that port; choose another with --port") from None
    sock.listen(2048)
    return sock


def serve(app, sock: socket.socket, log_level: str = "warning") -> None:
    """Run ``app`` under uvicorn on ``sock`` until interrupted."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, log_level=log_level))
    server.run(sockets=[sock])


def serve_forked(app, sock: socket.socket, workers: int, log_level: str = "warning") -> None:
    """``workers`` processes forked from this one after the catalog is loaded, each running
    ``app`` on the same listening socket: the kernel hands every connection to one of them,
    and what the catalog loaded is shared copy-on-write, not loaded N times.

    Why processes: the explorer's work (encoding pages, explaining hits) holds the GIL, so
    threads of one process use one core however many there are. Each worker keeps its own
    page cache (a title's first page is cold once per worker). SIGINT / SIGTERM stop them
    all; a worker that dies stops the rest, and this returns its exit status as an error.

    Why each worker builds its own searcher (the model's embeddings, a FAISS index) after the
    fork instead of sharing one built here: a process forked after its parent ran an OpenMP
    kernel hangs in its own next one (GNU OpenMP keeps no state across fork; faiss#5206).
    Reproduced on this project's stack, with 2 threads: a FAISS search or a torch matmul in
    the parent, then a FAISS search in the child, hangs the child. Nothing run before the
    fork here (loading the catalog, the model's weights, an index file) computes with one."""
    if not hasattr(os, "fork"):
        raise ValueError("--workers needs os.fork (Linux, macOS): serve with one worker here")
    children: list[int] = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:  # a worker: serve until told to stop, never return into the caller
            code = 1
            try:
                serve(app, sock, log_level)
                code = 0
            finally:
                os._exit(code)
        children.append(pid)

    def stop(*_) -> None:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    failed = 0
    try:
        while children:
            pid, status = os.wait()
            children.remove(pid)
            code = os.waitstatus_to_exitcode(status)
            if code not in (0, -signal.SIGTERM, -signal.SIGINT) and not failed:
                failed = code
                stop()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if failed:
        raise RuntimeError(f"an explorer worker exited with status {failed}; stopped the rest")


def serve_cli(args) -> None:
    """``mediafm serve``: check every file against the store, bind, print the URL, serve."""
    from mediafm.errors import require

    require("fastapi", "mediafm serve")
    require("uvicorn", "mediafm serve")
    from mediafm.serve.app import LOCAL_HOSTS, create_app
    from mediafm.serve.catalog import Catalog

    token = args.token or os.environ.get("MEDIAFM_TOKEN")
    if args.host not in LOCAL_HOSTS:
        print(f"warning: serving on {args.host}: anyone who can reach this machine can open "
              "the explorer" + ("" if token else "; set --token (or MEDIAFM_TOKEN) to require "
                                "a bearer token"), file=sys.stderr)
    catalog = Catalog(args.store, args.model, args.heads, args.index, args.pred,
                      media_root=args.media_root, scenes=args.scenes)
    app = create_app(catalog, token, args.host, tuple(args.allow_host))
    sock = bind(args.host, args.port)
    url_host = f"[{args.host}]" if ":" in args.host else args.host
    workers = getattr(args, "workers", 1)
    print(f"mediafm explorer: http://{url_host}:{args.port}/"
          + (f"?token={token}" if token else "") + f"  (API docs: /docs; {args.store}; "
          f"search: {catalog.searched}" + (f"; {workers} workers" if workers > 1 else "")
          + ")", flush=True)
    settle()
    if workers > 1:
        serve_forked(app, sock, workers)
    else:
        serve(app, sock)


def settle() -> None:
    """The catalog just loaded out of the garbage collector's sight (``gc.freeze``): it lives
    as long as the server, and a full collection that walks it stalls every request in flight
    (~35 ms over a 10-title catalog's ~100k objects, more for a larger one). Forked workers
    then also share those pages instead of copying them when the collector touches them."""
    import gc

    gc.collect()
    gc.freeze()
