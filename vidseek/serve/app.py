"""The web page and JSON API of ``vidseek serve`` (FastAPI): ``create_app(index_dir, token=None)``.

Routes (documented in docs/serve.md; the OpenAPI schema is ``GET /api/openapi.json``):

- ``GET /``: the page (``static/``: plain HTML, CSS and JavaScript; nothing from the network).
- ``GET /api/search?q=TEXT&top_k=N[&video=ID][&min_score=S]``: ranked moments.
- ``GET /api/videos``, ``GET /api/info``: the catalog, and what the index holds.
- ``GET /api/media/{id}``: the video file, with HTTP Range (206) so that a player can seek.
- ``GET /api/thumbnail/{id}?t=S``: a JPEG of the picture at second S (cached in the index folder).
- ``GET /api/clip/{id}?start=S&end=E``: seconds S to E cut into an MP4.
- ``GET /api/curve/{id}?q=TEXT``: the query's relevance over the whole video, one value per clip.

Security: files are served by catalog id only, after ``vidseek.library.media.indexed_file`` has
checked that the id is an indexed video and that its file lies inside the library; nothing from a
request becomes a path. With a ``token``, every request but the page's (``/``, ``/static/``) must
carry it (``Authorization: Bearer``, ``?token=`` or the cookie the page sets when opened with
``?token=``); without one, the
``Host`` header must name one of ``hosts`` (the loopback names by default), which defeats DNS
rebinding. Every error is JSON ``{"error": message}``; an unexpected one is logged with its
traceback and answered 500 without it.
"""

from __future__ import annotations

import asyncio
import logging
import mimetypes
import os
import re
import secrets
import shutil
import tempfile
import time
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, Query
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request

from vidseek import __version__
from vidseek.engine.grounder import QueryError
from vidseek.errors import VidseekError
from vidseek.library.media import MediaError, UnreadableVideo, check_span, thumbnail_time
from vidseek.library.searcher import NotIndexed, PhrasesUnavailable
from vidseek.serve.live import REFRESH_S, LiveIndex

log = logging.getLogger("vidseek.serve")

MAX_QUERY_CHARS = 500  # a longer query is refused (422)
MAX_TOP_K = 100
MAX_CLIP_S = 600.0  # the longest span /api/clip cuts
CLIP_SLOTS = 2  # clips cut at once (each keeps a core busy)
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
TOKEN_COOKIE = "vidseek_token"
_ID = re.compile(r"[0-9]{1,18}")
STATIC = resources.files("vidseek.serve") / "static"
PAGE_HEADERS = {  # the page loads its own files only, and is never framed
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; media-src 'self'; object-src 'none'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}


# ---- the shapes of the answers (the OpenAPI schema) -----------------------------------------------
class Phrase(BaseModel):
    text: str
    start: float
    end: float
    weight: float


class MomentOut(BaseModel):
    rank: int
    score: float  # calibrated relevance in [0, 1]
    video_id: int
    video: str  # path relative to the library root
    start: float  # seconds in the file
    end: float
    retrieval: float  # cosine similarity of the query and the best clip
    span: float  # the head's confidence in the span
    thumbnail_url: str
    media_url: str
    clip_url: str
    curve_url: str
    phrases: list[Phrase] | None = None


class SearchOut(BaseModel):
    query: str
    moments: list[MomentOut]
    threshold: float  # the score a moment needed
    best: MomentOut | None  # when no moment reached the threshold: the best candidate below it
    corrections: list[tuple[str, str]] = []  # (typed, searched) words corrected to the model's vocabulary
    unseen_words: list[str] = []  # the query's words the model never saw in training
    took_ms: float


class VideoOut(BaseModel):
    id: int
    path: str
    duration: float | None
    status: str  # ok | error | pending
    error: str | None
    media_url: str | None  # ok videos only


class VideosOut(BaseModel):
    total: int  # videos of that status in all
    offset: int
    videos: list[VideoOut]


class CurveOut(BaseModel):
    query: str
    video_id: int
    video: str
    duration: float | None
    window_s: float
    stride_s: float
    starts: list[float]
    ends: list[float]
    values: list[float]  # cosine similarity of the query with each clip


class InfoOut(BaseModel):
    version: str
    model: str | None
    fingerprint: str | None
    domain: str
    window_s: float | None
    stride_s: float | None
    rate: float | None
    counts: dict[str, int]
    duration: float
    threshold: float
    phrases: bool  # whether the model grounds each phrase of a query too (PLPNet): search with ?phrases=true
    problems: list[str] | None  # integrity problems, with ?check=true (None: not checked)
    failed: list[dict[str, str]]
    generation: int  # how many times the server has read the index


class ErrorOut(BaseModel):
    error: str


ERRORS = {code: {"model": ErrorOut} for code in (400, 401, 404, 422, 503)}


# ---- errors ---------------------------------------------------------------------------------------
def _status(exc: Exception) -> int:
    """The HTTP status of a user error: what was asked is not there (404), cannot be (400, 422), or
    the index cannot answer now (503: no index, damaged files; the message says what to run)."""
    if isinstance(exc, NotIndexed):
        return 404
    if isinstance(exc, (QueryError, PhrasesUnavailable, MediaError)):
        return 400
    if isinstance(exc, UnreadableVideo):
        return 422
    return 503


def _error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _video_id(text: str) -> int:
    """A catalog id from a URL; anything but a decimal number is a video this server does not have (404)."""
    if not _ID.fullmatch(text):
        raise NotIndexed(f"no video has the id {text[:40]!r}: videos are named by their numeric id (GET /api/videos)")
    return int(text)


def _query(q: str) -> str:
    """A query from a URL, checked: not blank (400), at most MAX_QUERY_CHARS characters (422)."""
    if not q.strip():
        raise _Refused(400, "the query is empty: type a few words describing the moment, e.g. ?q=person+opens+door")
    if len(q) > MAX_QUERY_CHARS:
        raise _Refused(422, f"the query has {len(q):,} characters; at most {MAX_QUERY_CHARS} are searched: "
                            "describe the moment in fewer words")
    return q


class _Refused(Exception):
    """A request refused with ``status`` and a message (answered as JSON)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


# ---- the guard: host and token --------------------------------------------------------------------
def host_name(host: str) -> str:
    """The name in a ``Host`` header, without its port, in lower case.

    >>> host_name("LocalHost:8000"), host_name("[::1]:8000"), host_name("127.0.0.1"), host_name("::1")
    ('localhost', '::1', '127.0.0.1', '::1')
    """
    if host.startswith("["):
        return host[1:host.find("]")].lower() if "]" in host else host.lower()
    return (host.rsplit(":", 1)[0] if host.count(":") == 1 else host).lower()


class Guard:
    """ASGI middleware: the ``Host`` check (when ``hosts`` is given), the token check of every request
    but those of the page and its files (when a ``token`` is given), and headers every answer carries."""

    def __init__(self, app, token: str | None, hosts: tuple[str, ...] | None):
        self.app, self.token = app, token
        self.hosts = None if hosts is None else {h.lower().strip("[]") for h in hosts}

    def authorised(self, request: Request) -> bool:
        given = request.headers.get("authorization", "")
        candidates = [given[7:].strip()] if given.lower().startswith("bearer ") else []
        candidates += [request.query_params.get("token", ""), request.cookies.get(TOKEN_COOKIE, "")]
        return any(c and secrets.compare_digest(c.encode(), self.token.encode()) for c in candidates)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        request = Request(scope)
        if self.hosts is not None:
            host = request.headers.get("host", "")
            if host_name(host) not in self.hosts:
                return await _error(400, f"this server answers requests for {', '.join(sorted(self.hosts))} only, "
                                         f"not {host[:80]!r}: open it by one of those names")(scope, receive, send)
        public = scope["path"] == "/" or scope["path"].startswith("/static/")  # the page: no data in it
        if self.token is not None and not public and not self.authorised(request):
            return await _error(401, "this server needs its token: open the address `vidseek serve` printed "
                                     "(it ends in ?token=...), or send the header Authorization: Bearer TOKEN",
                                {"WWW-Authenticate": "Bearer"})(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + [
                    (b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer")]
            await send(message)

        await self.app(scope, receive, send_with_headers)


# ---- the app --------------------------------------------------------------------------------------
def create_app(index_dir: str | os.PathLike, token: str | None = None, *, hosts: tuple[str, ...] | None = LOCAL_HOSTS,
               backend: str = "onnxruntime", refresh_s: float = REFRESH_S, live: LiveIndex | None = None) -> FastAPI:
    """The ASGI app of ``vidseek serve`` for the index in ``index_dir``.

    The index is opened here (its bundle loaded, ``NoIndex`` raised when there is none), so a server
    answers its first search warm. `token`: the secret every ``/api/`` request must carry (None: no
    token); `hosts`: the names the ``Host`` header may give when there is no token (None: any);
    `refresh_s`: how often to look for a newer index (``LiveIndex``). Run it with uvicorn; the
    index is released when the app shuts down (its lifespan; ``with TestClient(app)`` in tests).
    """
    if live is None:
        live = LiveIndex(index_dir, backend=backend, refresh_s=refresh_s)
        live.start()
    clip_slots = asyncio.Semaphore(CLIP_SLOTS)

    @asynccontextmanager
    async def lifespan(app):
        yield
        live.close()

    app = FastAPI(title="vidseek", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url="/api/openapi.json",
                  description="Find moments in video by natural language: search an indexed library, play and cut "
                              "the moments. Every error is JSON {\"error\": message}.")
    app.state.live = live
    app.add_middleware(Guard, token=token, hosts=None if token is not None else hosts)
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")

    # -- errors ------------------------------------------------------------------------------------
    @app.exception_handler(_Refused)
    async def refused(request, exc: _Refused):
        return _error(exc.status, str(exc))

    @app.exception_handler(VidseekError)
    async def user_error(request, exc: VidseekError):
        return _error(_status(exc), str(exc))

    @app.exception_handler(OSError)
    async def os_error(request, exc: OSError):
        return _error(503, f"the index or a video cannot be read now ({exc.strerror or exc}); check the files, "
                           "or run `vidseek doctor`")

    @app.exception_handler(RequestValidationError)
    async def invalid(request, exc: RequestValidationError):
        parts = [f"{'.'.join(str(x) for x in e['loc'][1:]) or e['loc'][0]}: {e['msg']}" for e in exc.errors()]
        return _error(422, "; ".join(parts) + " (the parameters are documented at /api/openapi.json)")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request, exc: StarletteHTTPException):
        if exc.status_code == 404:
            return _error(404, f"nothing here: {request.url.path[:200]} (the API is /api/search, /api/videos, "
                               "/api/info, /api/media/ID, /api/thumbnail/ID, /api/clip/ID, /api/curve/ID)")
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(Exception)
    async def bug(request, exc: Exception):
        log.exception("unexpected error answering %s", request.url.path)
        return _error(500, "internal error: the server's log has the details; please report it")

    # -- the page ----------------------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    async def page(request: Request):
        response = FileResponse(str(STATIC / "index.html"), media_type="text/html", headers=PAGE_HEADERS)
        given = request.query_params.get("token", "")
        if token is not None and given and secrets.compare_digest(given.encode(), token.encode()):
            response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict")
        return response

    # -- search ------------------------------------------------------------------------------------
    @app.get("/api/search", response_model=SearchOut, responses=ERRORS)
    async def search(q: str = Query("", description=f"the query, 1 to {MAX_QUERY_CHARS} characters"),
                     top_k: int = Query(10, ge=1, le=MAX_TOP_K, description="moments returned at most"),
                     video: str | None = Query(None, description="search this video only (its id)"),
                     min_score: float | None = Query(None, ge=0, le=1, description="default: the model's threshold"),
                     phrases: bool = Query(False, description="PLPNet bundles: each phrase's span")):
        """The `top_k` best moments for `q` across the library (or in one `video`), best first."""
        query = _query(q)
        vid = _video_id(video) if video else None
        t0 = time.perf_counter()
        result = await asyncio.wrap_future(live.submit(
            lambda searcher: _search(searcher, query, top_k, vid, min_score, phrases)))
        result["took_ms"] = round((time.perf_counter() - t0) * 1000, 2)
        return result

    @app.get("/api/curve/{video_id}", response_model=CurveOut, responses=ERRORS)
    async def curve(video_id: str, q: str = Query("", description="the query")):
        """The relevance of `q` over the whole video: the cosine similarity of the query with each clip
        (windows of `window_s` every `stride_s` seconds)."""
        query, vid = _query(q), _video_id(video_id)
        return await asyncio.wrap_future(live.submit(lambda searcher: _curve(searcher, query, vid)))

    # -- the catalog -------------------------------------------------------------------------------
    @app.get("/api/videos", response_model=VideosOut, responses=ERRORS)
    def videos(status: str | None = Query(None, pattern="^(ok|error|pending)$"),
               offset: int = Query(0, ge=0), limit: int = Query(1000, ge=1, le=10_000)):
        """The videos of the catalog in the order they were added (those of one `status`), `limit` at a time."""
        rows = live.index.videos(status)
        return {"total": len(rows), "offset": offset, "videos": [
            {"id": v.id, "path": v.path, "duration": v.duration, "status": v.status, "error": v.error,
             "media_url": f"/api/media/{v.id}" if v.status == "ok" else None} for v in rows[offset:offset + limit]]}

    @app.get("/api/info", response_model=InfoOut, responses=ERRORS)
    def info(check: bool = Query(False, description="also run the integrity check of every cache file (slow on a "
                                                    "large library)")):
        """What the index holds: model, settings, videos by status, files that failed, and with `check`
        the integrity problems (as `vidseek info`)."""
        rows = live.index.videos()
        model = live.call(lambda searcher: (searcher.settings, searcher.bundle.domain,
                                            searcher.calibration.threshold or 0.0, searcher.grounder.family.phrases))
        settings, domain, threshold, phrases = model
        counts = {status: sum(v.status == status for v in rows) for status in ("ok", "error", "pending")}
        return {"version": __version__, "model": settings.model, "fingerprint": settings.fingerprint,
                "domain": domain, "window_s": settings.window_s, "stride_s": settings.stride_s, "rate": settings.rate,
                "counts": counts, "duration": float(sum(v.duration or 0.0 for v in rows if v.status == "ok")),
                "threshold": threshold, "phrases": phrases, "problems": live.index.info().problems if check else None,
                "failed": [{"path": v.path, "error": v.error or ""} for v in rows if v.status == "error"],
                "generation": live.generation}

    # -- files -------------------------------------------------------------------------------------
    @app.get("/api/media/{video_id}", responses={**ERRORS, 206: {"description": "the bytes a Range asked for"}},
             response_class=FileResponse)
    def media(video_id: str):
        """The video file, with HTTP Range requests (206 Partial Content) for seeking; HEAD too."""
        path = live.index.file(_video_id(video_id))
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return FileResponse(path, media_type=kind, headers={"Cache-Control": "private, max-age=3600"})

    app.add_api_route("/api/media/{video_id}", media, methods=["HEAD"], include_in_schema=False)

    @app.get("/api/thumbnail/{video_id}", responses={**ERRORS, 200: {"content": {"image/jpeg": {}}}},
             response_class=Response)
    def thumbnail(video_id: str, t: float = Query(0.0, ge=0, description="seconds into the file")):
        """A JPEG of the picture at second `t` (rounded to 0.1 s), at most 320 pixels wide."""
        data = live.index.thumbnail(_video_id(video_id), t)
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=86400"})

    @app.get("/api/clip/{video_id}", responses={**ERRORS, 200: {"content": {"video/mp4": {}}}},
             response_class=FileResponse)
    async def clip(video_id: str, start: float = Query(..., ge=0), end: float = Query(..., gt=0)):
        """Seconds `start` to `end` of the video cut into an MP4 (H.264, AAC), at most 600 s."""
        vid = _video_id(video_id)
        check_span(start, end, MAX_CLIP_S)
        folder = tempfile.mkdtemp(prefix="vidseek-clip-")
        out = Path(folder) / f"clip-{vid}-{start:.2f}-{end:.2f}.mp4"
        try:
            async with clip_slots:
                await asyncio.to_thread(live.index.clip, vid, start, end, out, MAX_CLIP_S)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return FileResponse(out, media_type="video/mp4", filename=out.name,
                            background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True))

    return app


# ---- work done on the search thread (``LiveIndex``) ------------------------------------------------
def _search(searcher, query: str, top_k: int, vid: int | None, min_score: float | None, phrases: bool) -> dict:
    video = None
    if vid is not None:
        if vid not in searcher.videos:
            raise NotIndexed(f"no indexed video has the id {vid} (GET /api/videos lists them)")
        video = searcher.videos[vid].path
    moments = searcher.search(query, top_k=top_k, video=video, min_score=min_score, phrases=phrases)
    return {"query": query, "moments": [_card(searcher, m, query) for m in moments], "threshold": moments.threshold,
            "best": _card(searcher, moments.best, query) if moments.best is not None else None,
            "corrections": moments.corrections, "unseen_words": moments.unseen_words}


def _card(searcher, moment, query: str) -> dict:
    """A moment as the API gives it: its fields (not its absolute path) and the URLs that show it."""
    vid = searcher.video_id(moment.video)
    middle = thumbnail_time((moment.start + moment.end) / 2)
    card = {k: v for k, v in moment.to_dict().items() if k != "path"}
    return {**card, "video_id": vid, "thumbnail_url": f"/api/thumbnail/{vid}?t={middle:g}",
            "media_url": f"/api/media/{vid}", "clip_url": f"/api/clip/{vid}?start={moment.start:g}&end={moment.end:g}",
            "curve_url": f"/api/curve/{vid}?q={quote(query)}"}


def _curve(searcher, query: str, vid: int) -> dict:
    if vid not in searcher.videos:
        raise NotIndexed(f"no indexed video has the id {vid} (GET /api/videos lists them)")
    row = searcher.videos[vid]
    return {**searcher.curve(query, row.path).to_dict(), "video_id": vid, "duration": row.duration}
