"""The explorer's web app: a FastAPI JSON API over a ``Catalog`` and a static page.

- Errors are typed (``mediafm.errors``), and each kind has its status: an unknown title or
  shot 404, outputs that do not belong together 409, a missing extra 501, a damaged file on
  the server 500; always JSON ``{"detail": message}``, never a traceback.
- Every path parameter is looked up in the store; a media file is served only when the
  store recorded it for that title, so no request can reach another file.
- Requests must name an allowed host (``Host`` header): localhost names, the address served
  on, and ``allow_hosts``; a page on another site that rebinds its DNS name to this machine
  cannot read the API.
- With a token every request needs it: ``Authorization: Bearer TOKEN``, or the
  ``mediafm_token`` cookie the page gets when opened as ``/?token=TOKEN``.
- ``/docs`` (Swagger UI) is served from the ``fastapi-offline`` package: nothing is loaded
  from elsewhere, so the page works offline; without that package ``/docs`` is off.
"""

from __future__ import annotations

import contextlib
import secrets
from importlib import resources

from fastapi import FastAPI, Query, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders

from mediafm.errors import BadQuery, MediaFMError, Mismatch, MissingExtra, NotFound
from mediafm.serve.catalog import Catalog, Page

COOKIE = "mediafm_token"
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
# threads for the endpoints that compute (a search, a page made the first time): more only
# queue on the GIL (measured on 2 cores: searches 102/s with starlette's 40, 124-131/s with 1-4)
WORKER_THREADS = 4
STATUS = ((NotFound, 404), (BadQuery, 400), (Mismatch, 409), (MissingExtra, 501),
          (MediaFMError, 500))


def status_of(error: Exception) -> int:
    """The HTTP status of a library error (its kind, not its text)."""
    return next((code for kind, code in STATUS if isinstance(error, kind)), 500)


def host_name(header: str) -> str:
    """``example.org:8765`` -> ``example.org``; ``[::1]:8765`` -> ``::1``."""
    if header.startswith("["):
        return header[1:].partition("]")[0]
    return header.rpartition(":")[0] if header.count(":") == 1 else header


def create_app(catalog: Catalog, token: str | None = None, host: str = "127.0.0.1",
               allow_hosts: tuple[str, ...] = ()) -> FastAPI:
    app = FastAPI(lifespan=_worker_threads, title="mediafm explorer", version="1",
                  docs_url=None, redoc_url=None,
                  description="Titles as timelines of shots, predictions, moments and "
                  "nearest shots across the catalog.")
    allowed = {h.lower() for h in (*LOCAL_HOSTS, host, *allow_hosts)}
    _guard(app, token, allowed)
    _routes(app, catalog)
    _pages(app)
    return app


@contextlib.asynccontextmanager
async def _worker_threads(app: FastAPI):
    import anyio.to_thread

    anyio.to_thread.current_default_thread_limiter().total_tokens = WORKER_THREADS
    yield


class HostAndToken:
    """Every HTTP request must name an allowed host, and carry the token when there is one;
    a request that brings the token in its query string gets it as a cookie.

    A plain ASGI middleware, not ``@app.middleware("http")``: starlette's
    ``BaseHTTPMiddleware`` runs each request's app in a task of its own and streams the
    response through a memory channel. Measured with ``benchmarks/serve_load.py`` (2 cores,
    3 rounds), 619 -> 646 requests/s at 50 clients and p99 at 200 clients 854 -> 497 ms, both
    within the rounds' spread: a small gain."""

    def __init__(self, app, token: str | None, allowed: set[str]):
        self.app, self.token, self.allowed = app, token, allowed
        if token is not None:
            carrier = Response()
            carrier.set_cookie(COOKIE, token, httponly=True, samesite="strict")
            self.cookie = carrier.headers["set-cookie"]

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        request = Request(scope)
        name = host_name(request.headers.get("host", "")).lower()
        if name not in self.allowed:
            return await JSONResponse({"detail": f"host {name!r} is not allowed (serve "
                                       "--allow-host NAME to answer to it)"},
                                      status_code=400)(scope, receive, send)
        if self.token is None:
            return await self.app(scope, receive, send)
        in_query = request.query_params.get("token")
        given = (request.headers.get("authorization", "").removeprefix("Bearer ").strip()
                 or request.cookies.get(COOKIE) or in_query or "")
        if not secrets.compare_digest(given.encode(), self.token.encode()):
            return await JSONResponse({"detail": "a valid token is required (Authorization: "
                                       "Bearer TOKEN, or open /?token=TOKEN)"},
                                      status_code=401)(scope, receive, send)
        if not in_query:
            return await self.app(scope, receive, send)

        async def with_cookie(message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).append("set-cookie", self.cookie)
            await send(message)

        await self.app(scope, receive, with_cookie)


def _guard(app: FastAPI, token: str | None, allowed: set[str]) -> None:
    app.add_middleware(HostAndToken, token=token, allowed=allowed)

    @app.exception_handler(MediaFMError)
    async def library_error(request: Request, error: MediaFMError):
        return JSONResponse({"detail": str(error)}, status_code=status_of(error))

    @app.exception_handler(Exception)
    async def internal_error(request: Request, error: Exception):
        return JSONResponse({"detail": f"internal error ({type(error).__name__}: {error})"},
                            status_code=500)


def _routes(app: FastAPI, catalog: Catalog) -> None:
    @app.get("/healthz")
    def healthz() -> dict:
        return {"status": "ok", "titles": len(catalog.titles),
                "shots": catalog.store.info.n_shots, "predictions": bool(catalog.kinds),
                "index": catalog.index is not None, "thumbs": catalog.store.has_thumbs,
                "searched": catalog.searched}

    @app.get("/api/titles")
    def titles(q: str = Query("", max_length=200), offset: int = Query(0, ge=0),
               limit: int = Query(50, ge=1, le=500)) -> dict:
        return catalog.list_titles(q, offset, limit)

    @app.get("/api/titles/{title_id}", responses={200: {"content": {"application/json": {}}},
                                                  304: {"description": "not modified"}})
    async def title(title_id: str, request: Request) -> Response:
        """Everything the title view shows: shots, predictions, moments, scenes. A cached
        page is answered on the event loop (a lookup); a new one is made in a thread."""
        page = catalog.cached_page(title_id)
        if page is None:
            page = await run_in_threadpool(catalog.title_page, title_id)
        return page_response(page, request)

    @app.get("/api/titles/{title_id}/shots/{shot}/thumb.jpg",
             responses={200: {"content": {"image/jpeg": {}}}})
    def thumb(title_id: str, shot: int) -> Response:
        jpeg = catalog.thumb(title_id, shot)
        if jpeg is None:
            raise NotFound(f"no thumbnail for title {title_id!r} shot {shot}")
        return Response(jpeg, media_type="image/jpeg",
                        headers={"cache-control": "max-age=3600"})

    @app.get("/api/search")
    def search(title: str, shot: int = Query(..., ge=0), k: int = Query(10, ge=1, le=100),
               other_titles: bool = False) -> dict:
        hits = catalog.search(title, shot, k, other_titles)
        return {"query": {"title_id": title, "shot_index": shot}, "hits": hits,
                "searched": catalog.searched}

    @app.get("/api/search/text")
    def search_text(q: str = Query(..., max_length=1000), k: int = Query(10, ge=1, le=100)
                    ) -> dict:
        return {"query": q, "hits": catalog.search_text(q, k),
                "searched": "the shots' text vectors (subtitles and transcripts)"}

    @app.get("/api/titles/{title_id}/timeline")
    def timeline(title_id: str, format: str = Query("otio", pattern="^(otio|edl|fcpxml|csv|"
                                                                     "chapters)$")) -> Response:
        data, name = catalog.timeline(title_id, format)
        return Response(data, media_type="application/octet-stream",
                        headers={"content-disposition": f'attachment; filename="{name}"'})

    @app.get("/api/titles/{title_id}/media", response_class=FileResponse)
    def media(title_id: str) -> FileResponse:
        path = catalog.media_file(title_id)
        if path is None:
            raise NotFound(f"no source media recorded (or present) for {title_id!r}")
        return FileResponse(path)  # answers HTTP range requests: the page seeks into shots


def page_response(page: Page, request: Request) -> Response:
    """A cached page as is: 304 when the client holds it (ETag), gzipped when it accepts
    that (a fifth of the bytes); the client revalidates each time (the server may restart
    with other predictions)."""
    headers = {"etag": page.etag, "cache-control": "no-cache", "vary": "accept-encoding"}
    if page.etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    if "gzip" in request.headers.get("accept-encoding", ""):
        return Response(page.gzipped, media_type="application/json",
                        headers={**headers, "content-encoding": "gzip"})
    return Response(page.body, media_type="application/json", headers=headers)


def _pages(app: FastAPI) -> None:
    static = resources.files("mediafm.serve") / "static"
    app.mount("/static", StaticFiles(directory=str(static)), name="static")
    _docs(app)

    @app.get("/", include_in_schema=False)
    def index(request: Request) -> Response:
        if request.query_params.get("token"):  # the cookie is set; drop the token from the URL
            return RedirectResponse("/")
        return FileResponse(str(static / "index.html"))


def _docs(app: FastAPI) -> None:
    """Swagger UI from the files of ``fastapi-offline`` (no CDN); off without it."""
    try:
        docs = resources.files("fastapi_offline") / "static"
    except ModuleNotFoundError:
        @app.get("/docs", include_in_schema=False)
        def no_docs() -> Response:
            raise MissingExtra("the API docs page needs fastapi-offline (pip install "
                               "'mediafm[serve]'); the schema is at /openapi.json")
        return
    from fastapi.openapi.docs import get_swagger_ui_html

    app.mount("/docs-static", StaticFiles(directory=str(docs)), name="docs-static")

    @app.get("/docs", include_in_schema=False)
    def swagger() -> Response:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="mediafm explorer API",
                                   swagger_js_url="/docs-static/swagger-ui-bundle.js",
                                   swagger_css_url="/docs-static/swagger-ui.css",
                                   swagger_favicon_url="/docs-static/favicon.png")
