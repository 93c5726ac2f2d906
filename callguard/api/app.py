"""`callguard-api`: the HTTP API and the recordings page on 127.0.0.1 (ADM-2, SEC-2).

App factory with typed `web.AppKey`s; the database engine and the worker threads live in
`cleanup_ctx`; one error middleware turns every refusal into JSON `{status, message}` (an HTML
page for a browser under /ui); the access log says who made each request.
"""

from __future__ import annotations

import ipaddress
import logging
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from callguard import metrics, recording_worker
from callguard.api import overview, resources, ui, ui_operator
from callguard.api.core import (
    EXECUTOR,
    PROBLEM_JSON,
    SESSIONS,
    SETTINGS,
    ApiError,
    aiohttp_path,
    openapi,
    problem,
    wrap,
)
from callguard.config import ConfigError, Settings, load_settings
from callguard.db import billing_repo
from callguard.db.session import make_sync_engine, sync_sessions
from callguard.services import base

log = logging.getLogger("callguard.api")

OPENAPI = web.AppKey("openapi", dict)
WORKERS = 8  # concurrent transactions; the sync engine's pool holds 5 + 10 overflow
MAX_BODY = 64 * 1024


def _error(request: web.Request, status: int, message: str,
           headers: dict[str, str] | None = None) -> web.Response:
    if request.path.startswith("/ui") and "text/html" in request.headers.get("Accept", ""):
        resp = ui.error_page(status, message, request)
    else:
        resp = web.json_response(problem(status, message, request.path), status=status,
                                 content_type=PROBLEM_JSON)
    if status == 401:
        resp.headers["WWW-Authenticate"] = 'Bearer realm="callguard"'
    for key, value in (headers or {}).items():
        resp.headers[key] = value
    return resp


@web.middleware
async def errors(request: web.Request,
                 handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
                 ) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return _error(request, exc.status, str(exc), exc.headers)
    except base.AdminError as exc:
        return _error(request, exc.status, str(exc))
    except IntegrityError as exc:
        # A concurrent writer won; the transaction was rolled back.
        return _error(request, 409, f"conflicts with existing data: {exc.orig}")
    except DataError as exc:
        # A value the column cannot hold; validation should have said so first.
        log.warning("data error on %s %s: %s", request.method, request.path, exc.orig)
        return _error(request, 400, f"invalid value: {exc.orig}")
    except (OperationalError, PoolTimeout) as exc:
        log.warning("database unavailable: %s", exc)
        return _error(request, 503, "the database is unavailable")
    except billing_repo.BillingError as exc:
        return _error(request, 409, str(exc))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        extra = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        message = {404: "no such resource", 405: f"method {request.method} not allowed here",
                   413: f"the body is larger than {MAX_BODY} bytes"}.get(exc.status, exc.reason)
        return _error(request, exc.status, message, extra)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return _error(request, 500, "internal error (logged)")


@web.middleware
async def count_requests(request: web.Request,
                         handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
                         ) -> web.StreamResponse:
    """callguard_api_requests_total by route template (never the path: it may hold an id or
    a number) and status (issue 18)."""
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:  # redirects (the UI's 303s) pass the error middleware
        status = exc.status
        raise
    finally:
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        metrics.api_request(request.method, route, status)


class AccessLog(AbstractAccessLogger):
    """One JSON line per request once it is answered (a file's status, 200 or 206, is only
    known then), with who asked; never the query string (a filter may hold a number)."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse,
            time: float) -> None:
        principal = request.get("principal")
        self.logger.info("%s %s -> %s", request.method, request.path, response.status,
                         extra={"who": principal.label() if principal else "-",
                                "ms": round(time * 1000, 1)})


async def _database(app: web.Application) -> AsyncIterator[None]:
    engine = make_sync_engine(app[SETTINGS])
    app[SESSIONS] = sync_sessions(engine)
    app[EXECUTOR] = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="api-db")
    yield
    app[EXECUTOR].shutdown(wait=True)
    engine.dispose()


async def _openapi(request: web.Request) -> web.StreamResponse:
    return web.json_response(request.app[OPENAPI])


def make_app(settings: Settings) -> web.Application:
    app = web.Application(middlewares=[count_requests, errors], client_max_size=MAX_BODY)
    app[SETTINGS] = settings
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(recording_worker.worker_ctx)  # issue #14: encryption, purge
    table = resources.routes()
    for route in table:
        app.router.add_route(route.method, aiohttp_path(route), wrap(route))
    app[OPENAPI] = openapi(table, "callguard", "1")
    app.router.add_get("/openapi.json", _openapi)
    ui.add_routes(app)
    overview.add_routes(app)
    ui_operator.add_routes(app)
    return app


def _loopback(host: str) -> None:
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        raise ConfigError(f"CALLGUARD_API_HOST={host} is not a loopback address (SEC-2)")


def main(argv: list[str] | None = None) -> None:
    from ari_app.logs import setup_logging  # the suite's JSON log lines

    setup_logging()
    try:
        settings = load_settings()
        _loopback(settings.api_host)
    except ConfigError as exc:
        print(f"callguard-api: configuration: {exc}", file=sys.stderr)
        sys.exit(2)
    log.info("listening on http://%s:%s", settings.api_host, settings.api_port)
    metrics.serve(settings.metrics_api_port, metrics.API_REGISTRY)
    web.run_app(make_app(settings), host=settings.api_host, port=settings.api_port,
                print=None, access_log=logging.getLogger("callguard.api.access"),
                access_log_class=AccessLog)


if __name__ == "__main__":
    main()
