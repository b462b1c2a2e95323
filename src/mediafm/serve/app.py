"""The explorer's web app: a FastAPI JSON API over a ``Catalog`` and a static page.

Every path parameter is looked up in the store (an unknown title is a 404 with a message); a
media file is served only when the store recorded it for that title, so no request can reach
another file. With a token every request needs it: ``Authorization: Bearer TOKEN``, or the
``mediafm_token`` cookie the page gets when opened as ``/?token=TOKEN``.
"""

from __future__ import annotations

import secrets
from importlib import resources

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from mediafm.serve.catalog import Catalog
from mediafm.store import StoreError

COOKIE = "mediafm_token"


def create_app(catalog: Catalog, token: str | None = None) -> FastAPI:
    app = FastAPI(title="mediafm explorer", version="1",
                  description="Titles as timelines of shots, predictions, moments and "
                  "nearest shots across the catalog.")

    @app.middleware("http")
    async def require_token(request: Request, call_next):
        if token is None:
            return await call_next(request)
        given = (request.headers.get("authorization", "").removeprefix("Bearer ").strip()
                 or request.cookies.get(COOKIE) or request.query_params.get("token") or "")
        if not secrets.compare_digest(given.encode(), token.encode()):
            return JSONResponse({"detail": "a valid token is required (Authorization: Bearer "
                                 "TOKEN, or open /?token=TOKEN)"}, status_code=401)
        response = await call_next(request)
        if request.query_params.get("token"):
            response.set_cookie(COOKIE, token, httponly=True, samesite="strict")
        return response

    def not_found(e: Exception) -> HTTPException:
        return HTTPException(404, str(e.args[0] if e.args else e))

    @app.get("/healthz")
    def healthz() -> dict:
        return {"status": "ok", "titles": len(catalog.titles),
                "shots": catalog.store.info.n_shots, "predictions": bool(catalog.kinds),
                "index": catalog.index is not None, "thumbs": catalog.thumbs.available}

    @app.get("/api/titles")
    def titles(q: str = Query("", max_length=200), offset: int = Query(0, ge=0),
               limit: int = Query(50, ge=1, le=500)) -> dict:
        return catalog.list_titles(q, offset, limit)

    @app.get("/api/titles/{title_id}")
    def title(title_id: str) -> dict:
        try:
            return catalog.title(title_id)
        except StoreError as e:
            raise not_found(e) from None

    @app.get("/api/titles/{title_id}/shots/{shot}/thumb.jpg",
             responses={200: {"content": {"image/jpeg": {}}}})
    def thumb(title_id: str, shot: int) -> Response:
        try:
            jpeg = catalog.thumb(title_id, shot)
        except StoreError as e:
            raise not_found(e) from None
        if jpeg is None:
            raise HTTPException(404, f"no thumbnail for title {title_id!r} shot {shot}")
        return Response(jpeg, media_type="image/jpeg",
                        headers={"cache-control": "max-age=3600"})

    @app.get("/api/search")
    def search(title: str, shot: int = Query(..., ge=0), k: int = Query(10, ge=1, le=100),
               other_titles: bool = False) -> dict:
        try:
            hits = catalog.search(title, shot, k, other_titles)
        except StoreError as e:
            status = 404 if "unknown title" in str(e) else 400
            raise HTTPException(status, str(e)) from None
        except KeyError as e:
            raise not_found(e) from None
        return {"query": {"title_id": title, "shot_index": shot}, "hits": hits}

    @app.get("/api/titles/{title_id}/media", response_class=FileResponse)
    def media(title_id: str) -> FileResponse:
        try:
            path = catalog.media_file(title_id)
        except StoreError as e:
            raise not_found(e) from None
        if path is None:
            raise HTTPException(404, f"no source media recorded (or present) for {title_id!r}")
        return FileResponse(path)  # answers HTTP range requests: the page seeks into shots

    static = resources.files("mediafm.serve") / "static"
    app.mount("/static", StaticFiles(directory=str(static)), name="static")

    @app.get("/", include_in_schema=False)
    def index(request: Request) -> Response:
        if request.query_params.get("token"):  # the cookie is set; drop the token from the URL
            return RedirectResponse("/")
        return FileResponse(str(static / "index.html"))

    return app


def serve(catalog: Catalog, host: str = "127.0.0.1", port: int = 8765,
          token: str | None = None, log_level: str = "warning") -> None:
    """Run the app under uvicorn until interrupted."""
    import uvicorn

    uvicorn.run(create_app(catalog, token), host=host, port=port, log_level=log_level)
