"""The REST API app and its command: ``create_app()`` and ``recsys-serve``.

``create_app()`` builds the FastAPI app from the routers in ``routes``; ``recsys-serve``
(``make serve``) runs it with uvicorn on 127.0.0.1:8000 by default. The serving
package: ``schemas`` (the contract: limits, response models), ``state`` (what is
loaded once, and the caches), ``routes`` (the endpoints), this module (app, error
handlers, lifespan, command) and ``demo`` (the Gradio page on the same state).

Why it is shaped this way:

* **Refuse to start rather than serve half an app.** Missing artifacts raise
  ``DataError`` naming the file and the command that creates it (``make pipeline``);
  ``recsys-serve`` prints ``error: ...`` and exits 2 before binding the port.
* **Every error answers the same body** (``schemas.ErrorOut``): 422 for a bad
  parameter (one entry per invalid parameter), 404 for an unknown platform or title
  (listing the valid values), 413/415 for a body too large (``BodyLimit``, refused
  unread) or not sent as JSON, and a logged 500 that never shows a traceback.
* **A promotion needs no restart.** The lifespan runs ``state.ChampionWatch.check``
  every ``reload_seconds`` in a worker thread: a changed ``champion.json`` loads the new
  champion and swaps it in; a failed load keeps the old one (``/health`` says why).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import json
import logging
import multiprocessing
import os
import socket
import sys
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from recsys_utils import __version__
from recsys_utils.errors import (
    DataError,
    UnknownFilterError,
    UnknownItemError,
    bounded,
    excerpt,
    run_command,
)
from recsys_utils.paths import ProjectPaths, project_paths
from recsys_utils.serving.routes import ROUTERS, BodyError
from recsys_utils.serving.schemas import MAX_BODY_BYTES, MAX_RATINGS, ErrorOut, FieldErrorOut
from recsys_utils.serving.state import (
    DEFAULT_CACHE_SIZE,
    DEFAULT_RELOAD_SECONDS,
    ChampionWatch,
    RatingsError,
    ResponseCache,
    ServingState,
    load_state,
    warm_cache,
)

__all__ = ["BodyLimit", "check_port", "create_app", "main", "openapi_json"]

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- error handlers


def _location(loc: Sequence[Any]) -> str:
    return ".".join(str(part) for part in loc)


def _parameter(loc: Sequence[Any]) -> tuple[str, str]:
    """``(field, where)`` for a pydantic error location. The field is the parameter's
    name, never a list index: ``("query", "platforms", 0)`` (an empty ``platforms=``)
    is field ``platforms``, "query parameter 'platforms' (value 1)"."""
    if len(loc) < 2:
        name = str(loc[0]) if loc else "request"
        return name, name
    names = [str(part) for part in loc[1:] if not isinstance(part, int)]
    items = [part for part in loc[1:] if isinstance(part, int)]
    field = names[-1] if names else str(loc[0])
    where = f"{loc[0]} parameter '{'.'.join(names) or field}'"
    return field, where + (f" (value {items[0] + 1})" if items else "")


async def _validation_handler(request: Request, exc: RequestValidationError) -> JSONResponse:
    raw = exc.errors()
    errors = [
        FieldErrorOut(location=_location(err.get("loc", ())), message=str(err.get("msg", "")))
        for err in raw
    ]
    field, where = _parameter(raw[0].get("loc", ()) if raw else ())
    message = errors[0].message if errors else "invalid"
    if raw and raw[0].get("type") == "json_invalid":
        # loc is ("body", offset): a character position, not a parameter's value
        offset = raw[0]["loc"][-1]
        reason = (raw[0].get("ctx") or {}).get("error", message)
        field, where, message = "body", "body", f"not valid JSON at character {offset}: {reason}"
    body = ErrorOut(detail=f"{where}: {message}", field=field, errors=errors)
    return JSONResponse(status_code=422, content=body.model_dump(exclude_none=True))


async def _unknown_filter_handler(request: Request, exc: UnknownFilterError) -> JSONResponse:
    # An unknown platform or rating is an unknown *resource* (404); the valid
    # values are listed so the client can fix the call.
    # Quote only a short, printable excerpt of the value (a garbage value can be
    # 512 bytes of control characters); `valid` lists the accepted values.
    listed = ", ".join(repr(v) for v in exc.valid) or "(none)"
    detail = f"unknown {exc.field} {excerpt(exc.value)}; valid values: {listed}"
    # `field` is the request parameter: `platforms` on recommendations (state.
    # UnknownPlatformsError), else the analytics parameter the filter is named after
    body = ErrorOut(detail=detail, field=getattr(exc, "parameter", exc.field),
                    valid=list(exc.valid))
    return JSONResponse(status_code=404, content=body.model_dump(exclude_none=True))


async def _unknown_item_handler(request: Request, exc: UnknownItemError) -> JSONResponse:
    # Every item id the API takes is a title id: the path's `title_id`, or a rated
    # title's `title_id` in a POST body (state.UnknownTitlesError)
    body = ErrorOut(detail=str(exc), field=getattr(exc, "field", "title_id"))
    return JSONResponse(status_code=404, content=body.model_dump(exclude_none=True))


async def _http_handler(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    body = ErrorOut(detail=str(exc.detail), field=getattr(exc, "field", None))  # routes.BodyError
    return JSONResponse(status_code=exc.status_code, content=body.model_dump(exclude_none=True),
                        headers=getattr(exc, "headers", None))


async def _ratings_handler(request: Request, exc: RatingsError) -> JSONResponse:
    # Valid ratings one by one, not together (a title twice): a 422 like the schema's.
    field, where = _parameter(exc.location)
    body = ErrorOut(detail=f"{where}: {exc}", field=field,
                    errors=[FieldErrorOut(location=_location(exc.location), message=str(exc))])
    return JSONResponse(status_code=422, content=body.model_dump(exclude_none=True))


async def _value_error_handler(request: Request, exc: ValueError) -> JSONResponse:
    # A library function rejected a value the schema let through: still the
    # client's input, so 422 rather than 500 (logged, as the schema should catch it).
    log.warning("ValueError on %s: %s", request.url.path, exc)
    body = ErrorOut(detail=str(exc))
    return JSONResponse(status_code=422, content=body.model_dump(exclude_none=True))


async def _unexpected_handler(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return JSONResponse(status_code=500, content={"detail": "internal error (logged)"})


# --------------------------------------------------------------------------- HEAD, docs


class HeadAsGet:
    """ASGI middleware: ``HEAD`` answers exactly like ``GET`` (status, headers, including
    ``Content-Length``), without the body (RFC 9110 9.3.2).

    Why a middleware: FastAPI registers ``@router.get`` for GET only, so HEAD was a 405
    on every route; declaring HEAD on each route would add ``head`` operations (with
    duplicate operation ids) to the OpenAPI schema. HEAD of the one POST route
    (``/recommendations``) is a 405, as its GET is.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def send_without_body(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, send_without_body)


def _too_large(limit: int) -> BodyError:
    return BodyError(413, f"body: larger than this server's limit of {limit:,} bytes (the "
                          f"most one request may carry, {MAX_RATINGS} ratings, is ~10 KB)")


class BodyLimit:
    """ASGI middleware: a request body over ``max_bytes`` is a 413 (``ErrorOut``, field
    ``body``) without being read. A ``Content-Length`` over the limit is refused before
    the first byte of the body arrives; a body without one (chunked) is counted as it
    streams in and refused as soon as it passes the limit.

    Why: FastAPI reads and parses the whole body before validating it, so a 200 MB body
    cost the server ~470 MB for a 422. FastAPI's own ``max_body_size`` checks only as the
    app reads or answers, with a bare "Content Too Large"; this refuses up front, in the
    API's error shape, naming the limit.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            response = await _http_handler(Request(scope), _too_large(self.max_bytes))
            await response(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                # an HTTPException: FastAPI re-raises it from its body reading, and the
                # app's handler answers it (any other error became a 400)
                raise _too_large(self.max_bytes)
            return message

        await self.app(scope, counted, send)


#: Where the Swagger UI and ReDoc files are served from (no CDN: /docs works offline).
DOCS_ASSETS = "/docs-assets"


def _docs_assets_dir() -> str:
    """The Swagger UI and ReDoc bundles shipped by the ``fastapi-offline`` package (we use
    its files only; the pages are FastAPI's own)."""
    import fastapi_offline

    return str(Path(fastapi_offline.__file__).parent / "static")


def _add_offline_docs(app: FastAPI) -> None:
    """``/docs`` (Swagger UI) and ``/redoc`` from local files; neither is in the schema."""
    app.mount(DOCS_ASSETS, StaticFiles(directory=_docs_assets_dir()), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{DOCS_ASSETS}/favicon.png",
            # no badge that asks validator.swagger.io about the schema
            swagger_ui_parameters={"validatorUrl": None})

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{DOCS_ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{DOCS_ASSETS}/favicon.png", with_google_fonts=False)


# --------------------------------------------------------------------------- app


def create_app(paths: ProjectPaths | None = None, *, state: ServingState | None = None,
               cache_size: int | None = None, warm_seconds: float | None = None,
               reload_seconds: float | None = None,
               max_body_bytes: int | None = None) -> FastAPI:
    """The API app. Tables and model load once, in the lifespan (or pass a loaded ``state``),
    and again whenever the champion pointer changes.

    Args:
        paths: the project tree to serve (default ``project_paths()``, i.e. the
            repository or ``$RECSYS_ROOT``).
        state: an already loaded ``ServingState`` (``recsys-serve`` loads it before
            binding the port so a missing artifact is a clean error, not a traceback).
        cache_size: users whose ranked list is kept in memory (LRU; 0 disables;
            default ``$RECSYS_CACHE_SIZE`` or ``DEFAULT_CACHE_SIZE``).
        warm_seconds: at startup and after a reload, spend up to this long computing
            the ranked lists of the most active users into the cache, so their first
            request is a lookup (default ``$RECSYS_WARM_SECONDS`` or 0).
        reload_seconds: how often to check ``champion.json`` for a new champion
            (default ``$RECSYS_RELOAD_SECONDS`` or ``DEFAULT_RELOAD_SECONDS``; 0 = never,
            though ``app.state.watch.check()`` still reloads on demand).
        max_body_bytes: largest request body accepted; a larger one is a 413 without
            being read (default ``$RECSYS_MAX_BODY_BYTES`` or ``schemas.MAX_BODY_BYTES``).

    Raises:
        DataError: one of these environment variables is not a valid value.
    """
    if cache_size is None:
        cache_size = from_environment(*ENVIRONMENT["cache_size"])
    if warm_seconds is None:
        warm_seconds = from_environment("RECSYS_WARM_SECONDS", "0", SECONDS)
    if reload_seconds is None:
        reload_seconds = from_environment(*ENVIRONMENT["reload_seconds"])
    if max_body_bytes is None:
        max_body_bytes = from_environment(*ENVIRONMENT["max_body_bytes"])

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if app.state.serving is None:
            try:
                app.state.serving = load_state(paths)
            except DataError as exc:
                # Under a bare `uvicorn --factory recsys_utils.serving.app:create_app` this
                # is the line to read above uvicorn's "Application startup failed".
                log.error("error: %s", exc)
                raise
            app.state.cache = ResponseCache(cache_size, app.state.serving)
            log.info("loaded model %s in %.2f s", app.state.serving.manifest.get("version"),
                     app.state.serving.load_seconds)
        if warm_seconds > 0 and cache_size > 0:
            warmed = warm_cache(app.state.serving, app.state.cache, warm_seconds)
            log.info("warmed the recommendation cache with %d users", warmed)
        poller = asyncio.create_task(_poll(app.state.watch)) if reload_seconds > 0 else None
        yield
        if poller is not None:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller

    app = FastAPI(
        title="Streaming recommender API",
        version=__version__,
        description=(
            "Recommendations from the champion model and platform analytics over the "
            "processed catalog. Errors answer `{detail, field, valid, errors}`."
        ),
        lifespan=lifespan,
        # operationIds are the handler names (get_title, recommendations, ...): stable
        # names for generated clients and for the OpenAPI links in `routes`.
        generate_unique_id_function=lambda route: route.name,
        docs_url=None, redoc_url=None,  # served from local files below (offline)
    )
    # What `state.get_state`, `state.cache_of` and `state.watch_of` hand to the routes.
    app.state.serving = state
    app.state.cache = ResponseCache(cache_size, state)
    app.state.watch = ChampionWatch(app.state, reload_seconds, cache_size, warm_seconds)

    app.add_exception_handler(RequestValidationError, _validation_handler)  # type: ignore[arg-type]
    app.add_exception_handler(UnknownFilterError, _unknown_filter_handler)  # type: ignore[arg-type]
    app.add_exception_handler(UnknownItemError, _unknown_item_handler)  # type: ignore[arg-type]
    app.add_exception_handler(RatingsError, _ratings_handler)  # type: ignore[arg-type]
    app.add_exception_handler(ValueError, _value_error_handler)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_handler)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected_handler)
    for router in ROUTERS:
        app.include_router(router)
    _add_offline_docs(app)
    app.add_middleware(HeadAsGet)
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)  # outermost: before any read
    return app


async def _poll(watch: ChampionWatch) -> None:
    """Check the champion pointer every ``watch.check_seconds`` until cancelled. The
    check runs in a worker thread: a load takes seconds and must not stop the event loop."""
    while True:
        await asyncio.sleep(watch.check_seconds)
        try:
            await asyncio.to_thread(watch.check)
        except Exception:  # noqa: BLE001 - the watch reports bad artifacts itself; this
            log.exception("champion check failed")  # is a bug, and must not stop polling


def openapi_json(app: FastAPI) -> str:
    """The app's OpenAPI schema as stable, reviewable JSON (the snapshot's format)."""
    return json.dumps(app.openapi(), indent=2, ensure_ascii=False) + "\n"


# --------------------------------------------------------------------------- CLI


PORT = bounded(int, 0, 65535)  # 0: any free port
COUNT = bounded(int, 0)  # a capacity; 0 turns the feature off
WORKERS = bounded(int, 1)
SECONDS = bounded(float, 0)
BYTES = bounded(int, 1)

#: Options an environment variable sets when the command line does not:
#: ``dest -> (variable, default, type)``.
ENVIRONMENT: dict[str, tuple[str, str, Callable[[str], Any]]] = {
    "port": ("RECSYS_PORT", "8000", PORT),
    "cache_size": ("RECSYS_CACHE_SIZE", str(DEFAULT_CACHE_SIZE), COUNT),
    "warm_seconds": ("RECSYS_WARM_SECONDS", "30", SECONDS),
    "reload_seconds": ("RECSYS_RELOAD_SECONDS", f"{DEFAULT_RELOAD_SECONDS:g}", SECONDS),
    "max_body_bytes": ("RECSYS_MAX_BODY_BYTES", str(MAX_BODY_BYTES), BYTES),
}


def from_environment(variable: str, default: str, convert: Callable[[str], Any]) -> Any:
    """``convert`` of ``$variable`` (of ``default`` when unset or empty, as a bare ``VAR=``
    line of an env file leaves it); a bad value is a ``DataError`` naming the variable."""
    text = os.environ.get(variable) or default
    try:
        return convert(text)
    except argparse.ArgumentTypeError as exc:
        raise DataError(f"environment variable {variable}: {exc}") from None


def fill_from_environment(parser: argparse.ArgumentParser, args: argparse.Namespace,
                          settings: Mapping[str, tuple[str, str, Callable[[str], Any]]]
                          ) -> None:
    """Options left out (``None``) take their environment variable, checked like the option
    itself: a bad one is a usage error naming it. Read after parsing, not as argparse
    defaults: an ``int()`` there made a bad variable a traceback, even for ``--help``."""
    for dest, setting in settings.items():
        if getattr(args, dest) is None:
            try:
                setattr(args, dest, from_environment(*setting))
            except DataError as exc:
                parser.error(str(exc))


def check_port(host: str, port: int) -> None:
    """``DataError`` unless ``host:port`` can be listened on: a busy port is one line before
    the seconds of loading, where uvicorn and Gradio only find out after them."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
        with socket.socket(family, kind, proto) as sock:
            # as uvicorn and Gradio bind: a port only in TIME_WAIT is free
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
    except OSError as exc:
        hint = "choose another --port" if exc.errno == errno.EADDRINUSE else \
            "check --host and --port"
        raise DataError(f"cannot listen on {host}:{port}: "
                        f"{(exc.strerror or str(exc)).lower()}; {hint}") from None


def _load_and_drop(root: str) -> None:
    load_state(project_paths(root))


def check_state_loads(paths: ProjectPaths) -> None:
    """Raise what :func:`load_state` would, from a throwaway process. A parent that
    spawns workers never serves; a copy it loaded and dropped would mostly stay in its
    memory (about half of one on the default data: 245 MB after ``del`` against 129 MB
    imported and 365 MB loaded)."""
    with ProcessPoolExecutor(max_workers=1,
                             mp_context=multiprocessing.get_context("spawn")) as pool:
        pool.submit(_load_and_drop, str(paths.root)).result()


def main(argv: Sequence[str] | None = None) -> int:
    """``recsys-serve``: load the artifacts, then serve the API with uvicorn."""
    parser = argparse.ArgumentParser(
        prog="recsys-serve", description="Serve the recommender REST API (docs at /docs)."
    )
    parser.add_argument("--host", default=os.environ.get("RECSYS_HOST", "127.0.0.1"),
                        help="interface to bind (default 127.0.0.1; 0.0.0.0 in a container)")
    parser.add_argument("--port", type=PORT,
                        help="port to listen on (default $RECSYS_PORT or 8000; 0 = any free)")
    parser.add_argument("--root", default=None,
                        help="project root holding data/processed and outputs/models "
                             "(default: the repository or $RECSYS_ROOT)")
    parser.add_argument("--log-level", default="info",
                        choices=["critical", "error", "warning", "info", "debug"])
    parser.add_argument("--access-log", action=argparse.BooleanOptionalAction, default=True,
                        help="log every request (off for load tests)")
    parser.add_argument("--cache-size", type=COUNT,
                        help="recommendation lists kept in memory per worker (LRU; 0 "
                             f"disables; default $RECSYS_CACHE_SIZE or {DEFAULT_CACHE_SIZE})")
    parser.add_argument("--warm-seconds", type=SECONDS,
                        help="at startup, precompute the ranked lists of the most active "
                             "users for up to this long (default $RECSYS_WARM_SECONDS or 30; "
                             "0 = off)")
    parser.add_argument("--reload-seconds", type=SECONDS,
                        help="check outputs/models/champion.json this often and load a new "
                             "champion without a restart (default $RECSYS_RELOAD_SECONDS or "
                             f"{DEFAULT_RELOAD_SECONDS:g}; 0 = never)")
    parser.add_argument("--max-body-bytes", type=BYTES,
                        help="refuse larger request bodies with a 413, unread (default "
                             f"$RECSYS_MAX_BODY_BYTES or {MAX_BODY_BYTES})")
    parser.add_argument("--workers", type=WORKERS, default=1,
                        help="worker processes, each with its own copy of the model "
                             "(default 1; up to the number of cores for more throughput)")
    parser.add_argument("--openapi", action="store_true",
                        help="print the OpenAPI schema and exit (needs no artifacts; "
                             "`make openapi-snapshot` pins it in tests/openapi_snapshot.json)")
    args = parser.parse_args(argv)
    fill_from_environment(parser, args, ENVIRONMENT)
    if args.openapi:
        sys.stdout.write(openapi_json(create_app()))
        return 0

    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s: %(message)s")
    paths = project_paths(args.root)

    def serve() -> None:
        import uvicorn

        common: dict[str, Any] = {"host": args.host, "port": args.port,
                                  "log_level": args.log_level, "access_log": args.access_log}
        # The port and the artifacts are checked before uvicorn starts: a busy port or a
        # missing artifact is one clear line, not a traceback from inside the server.
        check_port(args.host, args.port)
        if args.workers > 1:
            # Each worker process imports the app factory and loads its own state in
            # its lifespan; the root reaches them through the environment.
            check_state_loads(paths)
            os.environ["RECSYS_ROOT"] = str(paths.root)
            os.environ["RECSYS_CACHE_SIZE"] = str(args.cache_size)
            os.environ["RECSYS_WARM_SECONDS"] = str(args.warm_seconds)
            os.environ["RECSYS_RELOAD_SECONDS"] = str(args.reload_seconds)
            os.environ["RECSYS_MAX_BODY_BYTES"] = str(args.max_body_bytes)
            uvicorn.run("recsys_utils.serving.app:create_app", factory=True,
                        workers=args.workers, **common)
        else:
            uvicorn.run(create_app(paths, state=load_state(paths), cache_size=args.cache_size,
                                   warm_seconds=args.warm_seconds,
                                   reload_seconds=args.reload_seconds,
                                   max_body_bytes=args.max_body_bytes), **common)

    return run_command(serve)


if __name__ == "__main__":
    sys.exit(main())
