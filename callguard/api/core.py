"""The API's machinery: app keys, the database runner, bearer-token principals, declared routes
(each validated against its schemas before its handler runs) and the OpenAPI document built
from the same declarations, so the document cannot drift from what is enforced (ADM-2)."""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from functools import partial
from http import HTTPStatus
from typing import Any, TypeVar

from aiohttp import web
from sqlalchemy.orm import Session, sessionmaker

from callguard.api.schema import ERROR, Schema, SchemaError, from_query, validate
from callguard.config import Settings
from callguard.domain.audit import api_actor
from callguard.services import tokens

T = TypeVar("T")

SETTINGS = web.AppKey("settings", Settings)
SESSIONS = web.AppKey("sessions", sessionmaker)
EXECUTOR = web.AppKey("executor", ThreadPoolExecutor)

MAX_TOKEN_LENGTH = 256


PROBLEM_JSON = "application/problem+json"


class ApiError(Exception):
    def __init__(self, status: int, message: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


def problem(status: int, detail: str, instance: str) -> dict[str, Any]:
    """An RFC 9457 problem details object (served as application/problem+json)."""
    try:
        title = HTTPStatus(status).phrase
    except ValueError:
        title = "Error"
    return {"type": "about:blank", "title": title, "status": status, "detail": detail,
            "instance": instance}


async def db(app: web.Application, work: Callable[[Session], T]) -> T:
    """`work` in one transaction on a worker thread: committed when it returns, rolled back
    when it raises (nothing half-written). The shared CLI/API functions are sync, and some
    block on more than the database (reconcile asks ARI, purge unlinks files), so they never
    run on the event loop."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(app[EXECUTOR], partial(_tx, app[SESSIONS], work))


def _tx(sessions: sessionmaker, work: Callable[[Session], T]) -> T:  # type: ignore[type-arg]
    with sessions.begin() as session:
        return work(session)


# ---- who is asking ------------------------------------------------------------------------
@dataclass(frozen=True)
class Principal:
    """An operator (everything) or one contract (only its own data: REC-FILE-4, SEC-2)."""

    contract_id: int | None
    contract: str | None
    token_id: int | None  # None: the generated operator token of .run/secrets/api.token
    role: str = "contract"  # api_tokens.role: "operator" | "contract" (SEC-4)
    token_label: str = ""  # api_tokens.label: names the token in audits

    @property
    def operator(self) -> bool:
        return self.role == "operator" and self.contract_id is None

    def actor(self) -> str:
        """Who this is in an audit (who changed a price): the token's role, id and label,
        never the token (`domain.audit.api_actor`)."""
        return api_actor(self.role, self.token_id, self.token_label)

    def label(self) -> str:
        who = "operator" if self.operator else f"contract {self.contract}"
        return f"{who} (token {self.token_id if self.token_id is not None else 'file'})"


async def principal_of(app: web.Application, token: str | None) -> Principal | None:
    if not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    if hmac.compare_digest(token.encode(), app[SETTINGS].api_token.encode()):
        return Principal(None, None, None, "operator")
    found = await db(app, lambda s: tokens.resolve_token(s, token))
    return None if found is None else Principal(found[1], found[2], found[0], found[3],
                                                found[4])


def bearer(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


# ---- declared routes ----------------------------------------------------------------------
class Access(StrEnum):
    PUBLIC = "public"
    ANY = "any"  # operator, or a contract token limited to its own contract
    OPERATOR = "operator"


@dataclass(frozen=True)
class Param:
    name: str
    where: str  # "path" | "query"
    schema: Schema
    required: bool = False
    description: str = ""


@dataclass
class Ctx:
    request: web.Request
    principal: Principal | None
    path: dict[str, Any]
    query: dict[str, Any]
    body: dict[str, Any]

    @property
    def app(self) -> web.Application:
        return self.request.app

    @property
    def who(self) -> Principal:
        assert self.principal is not None  # only PUBLIC routes have none
        return self.principal

    def own_contract(self, asked: str | None) -> str | None:
        """The contract filter to apply: a contract token is always limited to its own; asking
        for another one looks exactly like asking for one that does not exist."""
        if self.who.operator:
            return asked
        if asked is not None and asked != self.who.contract:
            raise ApiError(404, f"no contract {asked!r}")
        return self.who.contract


Handler = Callable[[Ctx], Awaitable[Any]]


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # OpenAPI style, also the aiohttp pattern: /api/v1/contracts/{code}
    op_id: str
    summary: str
    tag: str
    access: Access
    handler: Handler
    params: tuple[Param, ...] = ()
    body: Schema | None = None
    status: int = 200
    response: Schema | None = None  # None with 200: a binary body (audio)
    errors: tuple[int, ...] = ()
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


PAGING = (
    Param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 500, "default": 100},
          description="page size"),
    Param("offset", "query", {"type": "integer", "minimum": 0, "maximum": 1_000_000_000,
                              "default": 0}, description="items to skip"),
)


def _path_value(p: Param, raw: str) -> Any:
    """A malformed path segment names nothing that exists: 404, not 400."""
    try:
        if p.schema.get("type") == "integer":
            return from_query(raw, p.schema, p.name)
        return validate(raw, p.schema, p.name)
    except SchemaError as exc:
        raise ApiError(404, f"not found: malformed {p.name} {raw[:40]!r}") from exc


async def _body(request: web.Request, schema: Schema) -> dict[str, Any]:
    if request.content_type != "application/json":
        raise ApiError(415, "the body must be JSON (Content-Type: application/json)")
    try:
        data = json.loads(await request.text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"the body is not valid JSON: {exc}") from exc
    try:
        result: dict[str, Any] = validate(data, schema, "body")
    except SchemaError as exc:
        raise ApiError(400, str(exc)) from exc
    return result


def aiohttp_path(route: Route) -> str:
    """The OpenAPI path as an aiohttp pattern: integer ids only match digits, so
    /recordings/purge is never read as /recordings/{id}."""
    path = route.path
    for p in route.params:
        if p.where == "path" and p.schema.get("type") == "integer":
            path = path.replace(f"{{{p.name}}}", f"{{{p.name}:[0-9]+}}")
    return path


def wrap(route: Route) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        principal: Principal | None = None
        if route.access is not Access.PUBLIC:
            # Authentication first: nothing about the input is said to a stranger.
            principal = await principal_of(request.app, bearer(request))
            if principal is None:
                raise ApiError(401, "a valid bearer token is required")
            request["principal"] = principal
            if route.access is Access.OPERATOR and not principal.operator:
                raise ApiError(403, "this needs an operator token")
        path = {p.name: _path_value(p, request.match_info[p.name])
                for p in route.params if p.where == "path"}
        query: dict[str, Any] = {}
        try:
            for p in route.params:
                if p.where != "query":
                    continue
                if p.name in request.query:
                    query[p.name] = from_query(request.query[p.name], p.schema, p.name)
                elif p.required:
                    raise SchemaError(f"query parameter {p.name} is required")
                else:
                    query[p.name] = p.schema.get("default")
        except SchemaError as exc:
            raise ApiError(400, str(exc)) from exc
        body = await _body(request, route.body) if route.body is not None else {}
        result = await route.handler(Ctx(request, principal, path, query, body))
        if isinstance(result, web.StreamResponse):
            return result
        if route.status == 204:
            return web.Response(status=204)
        return web.json_response(result, status=route.status)

    return handle


# ---- OpenAPI 3 ----------------------------------------------------------------------------
_REASONS = {
    400: "invalid input (the message names the field)",
    401: "missing or unknown bearer token",
    403: "an operator token is needed",
    404: "no such resource (or another contract's)",
    409: "conflicts with what exists; nothing was written",
    415: "the body must be application/json",
    416: "the requested range is not satisfiable",
    503: "the database or Asterisk is unavailable",
}


def _json(schema: Schema, media: str = "application/json") -> dict[str, Any]:
    return {media: {"schema": schema}}


def openapi(routes: list[Route], title: str, version: str) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for r in routes:
        op: dict[str, Any] = {"operationId": r.op_id, "summary": r.summary, "tags": [r.tag]}
        if r.description:
            op["description"] = r.description
        if r.params:
            op["parameters"] = [
                {"name": p.name, "in": p.where, "required": p.where == "path" or p.required,
                 "schema": p.schema, **({"description": p.description} if p.description else {})}
                for p in r.params]
        if r.body is not None:
            op["requestBody"] = {"required": True, "content": _json(r.body)}
        responses: dict[str, Any] = {}
        if r.status == 204:
            responses["204"] = {"description": "done"}
        elif r.response is None and r.method == "HEAD":
            responses[str(r.status)] = {"description": "the file's headers, no body"}
        elif r.response is None:
            responses[str(r.status)] = {"description": "the file",
                                        "content": {"audio/wav": {"schema": {
                                            "type": "string", "format": "binary"}}}}
        else:
            responses[str(r.status)] = {"description": "OK", "content": _json(r.response)}
        codes = set(r.errors) | {503}
        if r.access is not Access.PUBLIC:
            codes |= {401}
            op["security"] = [{"bearerAuth": []}]
        else:
            op["security"] = []
        if r.access is Access.OPERATOR:
            codes.add(403)
        if r.body is not None:
            codes |= {400, 415}
        if any(p.where == "query" for p in r.params):
            codes.add(400)
        if any(p.where == "path" or p.name in ("contract", "endpoint") for p in r.params):
            codes.add(404)  # a path or filter naming nothing (or another contract's)
        for code in sorted(codes):
            responses[str(code)] = {"description": _REASONS[code],
                                    "content": _json(ERROR, PROBLEM_JSON)}
        op["responses"] = responses
        op.update(r.extra)
        paths.setdefault(r.path, {})[r.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version,
                 "description": "Operator and per-contract API of callguard (ADM-2). Send "
                 "`Authorization: Bearer <token>`: the operator token "
                 "(.run/secrets/api.token or `callguard tokens create --operator`) or a "
                 "contract token (`callguard tokens create --contract C`), which sees only "
                 "its own contract. Every 4xx/5xx answer is an RFC 9457 problem "
                 "(application/problem+json: type, title, status, detail, instance)."},
        "paths": paths,
        "components": {"securitySchemes": {"bearerAuth": {"type": "http",
                                                          "scheme": "bearer"}}},
    }
