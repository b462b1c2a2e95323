"""The explorer: a local web app over a store, a model's predictions and search.

``catalog.Catalog`` computes what is shown, as calls into the library (no web code);
``app.create_app`` is the FastAPI app (JSON API + the static page in ``static/``); ``serve``
runs it under uvicorn on a socket bound before anything is printed.
"""

from __future__ import annotations

import os
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
    print(f"mediafm explorer: http://{url_host}:{args.port}/"
          + (f"?token={token}" if token else "") + f"  (API docs: /docs; {args.store}; "
          f"search: {catalog.searched})", flush=True)
    serve(app, sock)
