"""The API's resources: the operator's data (ADM-2) and each contract's own view of it
(REC-FILE-4, SEC-2). Handlers are thin over the services the CLI calls
(`callguard.services.*`, `callguard.asterisk_check`), one transaction each; the handler reads
the clock and passes it in."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from aiohttp import web
from sqlalchemy.orm import Session

from callguard import asterisk_check, recording_options_admin, recording_pause
from callguard.api import schema as S
from callguard.api.core import (
    PAGING,
    SETTINGS,
    Access,
    ApiError,
    Ctx,
    Param,
    Route,
    db,
)
from callguard.asterisk.ari import AsteriskUnavailable
from callguard.db.models import Recording
from callguard.recordings import Search, to_json
from callguard.services import (
    base,
    billing,
    capacity,
    contracts,
    endpoints,
    forwarding,
    nuisance,
    numbers,
    priority,
    recordings,
    subscriptions,
    tokens,
    voided_periods,
)

API = "/api/v1"

P_CODE = Param("code", "path", S.CODE)
P_ENDPOINT = Param("name", "path", S.ENDPOINT_NAME)
P_NUMBER = Param("number", "path", S.NUMBER)
P_REC_ID = Param("id", "path", {"type": "integer", "minimum": 0, "maximum": 2**63 - 1})
P_TOKEN_ID = Param("id", "path", {"type": "integer", "minimum": 0, "maximum": 2**31 - 1})
Q_CONTRACT = Param("contract", "query", S.CODE, description="only this contract")


def today() -> date:
    """The API's clock: Tokyo's calendar day now (service dates, BILL-*)."""
    return base.tokyo_date(datetime.now(UTC))


def _paging(ctx: Ctx) -> tuple[int, int]:
    return ctx.query["limit"], ctx.query["offset"]


# ---- contracts ----------------------------------------------------------------------------
async def list_contracts(ctx: Ctx) -> Any:
    limit, offset = _paging(ctx)
    if ctx.who.operator:
        page = await db(ctx.app, lambda s: contracts.list_contracts(s, today(), limit, offset))
        return page.to_json()

    def own(s: Session) -> dict[str, Any]:
        items = [contracts.contract_json(s, base.get_contract(s, str(ctx.who.contract)), today())]
        return base.make_page(items[offset:], limit, offset, lambda c: c).to_json()

    return await db(ctx.app, own)


async def get_contract(ctx: Ctx) -> Any:
    code = ctx.own_contract(ctx.path["code"])
    return await db(ctx.app, lambda s: contracts.contract_json(
        s, base.get_contract(s, str(code)), today()))


async def create_contract(ctx: Ctx) -> Any:
    b = ctx.body
    return await db(ctx.app, lambda s: contracts.contract_json(s, contracts.create_contract(
        s, b["code"], b["kind"], b.get("name", ""), b.get("extension_digits", 4)), today()))


async def update_contract(ctx: Ctx) -> Any:
    b = ctx.body
    return await db(ctx.app, lambda s: contracts.contract_json(s, contracts.update_contract(
        s, ctx.path["code"], b.get("name"), b.get("extension_digits")), today()))


async def delete_contract(ctx: Ctx) -> Any:
    await db(ctx.app, lambda s: contracts.delete_contract(s, ctx.path["code"]))


# ---- endpoints ----------------------------------------------------------------------------
async def list_endpoints(ctx: Ctx) -> Any:
    limit, offset = _paging(ctx)
    code = ctx.own_contract(ctx.query["contract"])
    page = await db(ctx.app, lambda s: endpoints.list_endpoints(s, code, limit, offset))
    return page.to_json()


def _endpoint_scoped(ctx: Ctx, s: Session) -> Any:
    ep = base.get_endpoint(s, ctx.path["name"])
    if not ctx.who.operator and ep.contract_id != ctx.who.contract_id:
        raise base.NotFound(f"no endpoint {ctx.path['name']!r}")
    return ep


async def get_endpoint(ctx: Ctx) -> Any:
    return await db(ctx.app, lambda s: endpoints.endpoint_json(s, _endpoint_scoped(ctx, s)))


async def create_endpoint(ctx: Ctx) -> Any:
    b = ctx.body
    return await db(ctx.app, lambda s: endpoints.endpoint_json(s, endpoints.create_endpoint(
        s, b["name"], b["contract"], b["address"], b["extension"], b.get("channels", 1),
        b.get("roaming", False))))


async def update_endpoint(ctx: Ctx) -> Any:
    b = ctx.body
    return await db(ctx.app, lambda s: endpoints.endpoint_json(s, endpoints.update_endpoint(
        s, ctx.path["name"], b.get("address"), b.get("extension"), b.get("channels"),
        b.get("roaming"))))


async def delete_endpoint(ctx: Ctx) -> Any:
    await db(ctx.app, lambda s: endpoints.delete_endpoint(s, ctx.path["name"]))


# ---- numbers ------------------------------------------------------------------------------
def _number_out(s: Session, num: Any) -> dict[str, Any]:
    s.refresh(num)
    return numbers.number_json(num, num.contract.code, num.endpoint.name)


async def list_numbers(ctx: Ctx) -> Any:
    limit, offset = _paging(ctx)
    code = ctx.own_contract(ctx.query["contract"])

    def work(s: Session) -> dict[str, Any]:
        if ctx.query["endpoint"] is not None and not ctx.who.operator:
            _endpoint_scoped(dataclasses.replace(ctx, path={"name": ctx.query["endpoint"]}), s)
        return numbers.list_numbers(s, code, ctx.query["endpoint"], limit, offset).to_json()

    return await db(ctx.app, work)


async def get_number(ctx: Ctx) -> Any:
    def work(s: Session) -> dict[str, Any]:
        num = base.get_number(s, ctx.path["number"])
        if not ctx.who.operator and num.contract_id != ctx.who.contract_id:
            raise base.NotFound(f"no number {ctx.path['number']!r}")
        return _number_out(s, num)

    return await db(ctx.app, work)


async def create_number(ctx: Ctx) -> Any:
    b = ctx.body
    return await db(ctx.app, lambda s: _number_out(s, numbers.create_number(
        s, b["number"], b["endpoint"], b["role"], b.get("nuisance"))))


async def update_number(ctx: Ctx) -> Any:
    b = ctx.body
    return await db(ctx.app, lambda s: _number_out(s, numbers.update_number(
        s, ctx.path["number"], b.get("endpoint"), b.get("role"), b.get("nuisance"))))


async def delete_number(ctx: Ctx) -> Any:
    await db(ctx.app, lambda s: numbers.delete_number(s, ctx.path["number"]))


# ---- subscriptions and nuisance lists -----------------------------------------------------
async def list_subscriptions(ctx: Ctx) -> Any:
    limit, offset = _paging(ctx)
    page = await db(ctx.app, lambda s: subscriptions.list_subscriptions(s, today(), limit, offset))
    return page.to_json()


async def get_subscriptions(ctx: Ctx) -> Any:
    code = str(ctx.own_contract(ctx.path["code"]))
    return await db(ctx.app, lambda s: subscriptions.subscriptions_json(
        s, base.get_contract(s, code), today()))


def _then_subscriptions(ctx: Ctx, change: Any) -> Any:
    def work(s: Session) -> dict[str, Any]:
        change(s)
        return subscriptions.subscriptions_json(s, base.get_contract(s, ctx.path["code"]), today())

    return db(ctx.app, work)


async def set_recording(ctx: Ctx) -> Any:
    b = ctx.body
    return await _then_subscriptions(ctx, lambda s: subscriptions.set_recording(
        s, ctx.path["code"], today(), b.get("activated_on"), b.get("retention_days")))


async def get_recording_options(ctx: Ctx) -> Any:
    code = str(ctx.own_contract(ctx.path["code"]))
    return await db(ctx.app, lambda s: recording_options_admin.get_options(s, code))


async def set_recording_options(ctx: Ctx) -> Any:
    return await db(ctx.app, lambda s: recording_options_admin.set_options(
        s, ctx.path["code"], dict(ctx.body)))


async def cancel_recording(ctx: Ctx) -> Any:
    return await _then_subscriptions(ctx, lambda s: subscriptions.cancel_recording(
        s, ctx.path["code"], today(), ctx.query["on"]))


async def set_nuisance(ctx: Ctx) -> Any:
    b = ctx.body
    return await _then_subscriptions(ctx, lambda s: subscriptions.set_nuisance(
        s, ctx.path["code"], today(), b.get("unit"), b.get("list_size"), b.get("activated_on")))


async def cancel_nuisance(ctx: Ctx) -> Any:
    return await _then_subscriptions(ctx, lambda s: subscriptions.cancel_nuisance(
        s, ctx.path["code"], today(), ctx.query["on"]))


async def void_period(ctx: Ctx) -> Any:
    b = ctx.body
    who = ctx.who.actor()  # kept in the audit of the voided period

    def work(s: Session) -> dict[str, Any]:
        return voided_periods.voided_json(voided_periods.void_period(
            s, ctx.path["code"], ctx.path["service"], b["activated_on"], today(), who,
            b.get("force_past", False), b.get("reason", "")))

    return await db(ctx.app, work)


async def list_voided(ctx: Ctx) -> Any:
    limit, offset = _paging(ctx)
    code = ctx.query["contract"]
    return (await db(ctx.app, lambda s: voided_periods.list_voided(s, code, limit,
                                                                  offset))).to_json()


async def list_nuisance_lists(ctx: Ctx) -> Any:
    limit, offset = _paging(ctx)
    code = ctx.own_contract(ctx.query["contract"])
    page = await db(ctx.app, lambda s: nuisance.list_nuisance_lists(s, code, datetime.now(UTC),
                                                                  limit, offset))
    return page.to_json()


# ---- priority lines -----------------------------------------------------------------------
async def list_priority(ctx: Ctx) -> Any:
    limit, offset = _paging(ctx)
    return (await db(ctx.app, lambda s: priority.list_priority(s, limit, offset))).to_json()


async def add_priority(ctx: Ctx) -> Any:
    b = ctx.body
    line = await db(ctx.app, lambda s: priority.add_priority(s, b["number"],
                                                          b.get("description", "")))
    return {"number": line.number, "description": line.description}


async def delete_priority(ctx: Ctx) -> Any:
    await db(ctx.app, lambda s: priority.delete_priority(s, ctx.path["number"]))


# ---- tokens -------------------------------------------------------------------------------
async def list_tokens(ctx: Ctx) -> Any:
    limit, offset = _paging(ctx)
    code = ctx.query["contract"]
    return (await db(ctx.app, lambda s: tokens.list_tokens(s, code, limit, offset))).to_json()


async def create_token(ctx: Ctx) -> Any:
    contract, label = ctx.body.get("contract"), ctx.body.get("label", "")

    def work(s: Session) -> dict[str, Any]:
        row, token = tokens.create_token(s, contract, label)
        return {**tokens.token_json(row, contract), "token": token}

    return await db(ctx.app, work)


async def revoke_token(ctx: Ctx) -> Any:
    await db(ctx.app, lambda s: tokens.revoke_token(s, ctx.path["id"]))


# ---- forwarding (REC-IN-2) and recording capacity (REC-CAP-1) -------------------------------
def _own_number(ctx: Ctx, s: Session, number: str) -> None:
    """A contract token may read only its own numbers' forwarding."""
    num = base.get_number(s, number)
    if not ctx.who.operator and num.contract_id != ctx.who.contract_id:
        raise base.NotFound(f"no number {number!r}")


async def list_forwarding(ctx: Ctx) -> Any:
    limit, offset = _paging(ctx)
    code = ctx.own_contract(ctx.query["contract"])
    page = await db(ctx.app, lambda s: forwarding.list_forwarding(s, code, limit, offset))
    return page.to_json()


async def get_forwarding(ctx: Ctx) -> Any:
    number = ctx.path["number"]

    def work(s: Session) -> dict[str, Any]:
        _own_number(ctx, s, number)
        return forwarding.forwarding_json(number, forwarding.get_forwarding(s, number))

    return await db(ctx.app, work)


async def set_forwarding(ctx: Ctx) -> Any:
    b = ctx.body
    return await db(ctx.app, lambda s: forwarding.set_forwarding(
        s, ctx.path["number"], b["mode"], b["to"], b.get("after_s")))


async def clear_forwarding(ctx: Ctx) -> Any:
    await db(ctx.app, lambda s: forwarding.clear_forwarding(s, ctx.path["number"]))


def _capacity_defaults(ctx: Ctx) -> tuple[int, str]:
    settings = ctx.app[SETTINGS]
    return settings.max_recordings, settings.at_capacity_policy


async def get_capacity(ctx: Ctx) -> Any:
    default_max, default_policy = _capacity_defaults(ctx)
    return await db(ctx.app, lambda s: capacity.get_capacity(s, default_max, default_policy))


async def set_capacity(ctx: Ctx) -> Any:
    default_max, default_policy = _capacity_defaults(ctx)
    b = ctx.body
    return await db(ctx.app, lambda s: capacity.set_capacity(
        s, default_max, default_policy, b.get("max_recordings"), b.get("at_capacity_policy"),
        b.get("reset", False)))


# ---- recordings (REC-FILE-2/3/4) ----------------------------------------------------------
def recording_json(row: Recording, code: str, recordings_dir: Path) -> dict[str, Any]:
    data = to_json(row, code, recordings_dir)
    del data["path"]  # the server's file system is nobody's business
    out = {k: v.isoformat() if isinstance(v, datetime) else v for k, v in data.items()}
    out["audio_url"] = f"{API}/recordings/{row.id}/audio"
    return out


def get_recording_row(s: Session, rec_id: int, contract_id: int | None) -> tuple[Recording, str]:
    """The row, if this principal may see it (a contract: only its own, REC-FILE-4)."""
    return recordings.get_row(s, rec_id, contract_id)


async def search_recordings(ctx: Ctx) -> Any:
    limit, offset = _paging(ctx)
    q = ctx.query
    code = ctx.own_contract(q["contract"])
    search = Search(code, q["number"], q["remote"], q["direction"], q["since"], q["until"],
                    limit, offset)
    rec_dir = ctx.app[SETTINGS].recordings_dir
    page = await db(ctx.app, lambda s: recordings.search(
        s, search, lambda r, c: recording_json(r, c, rec_dir), q["cursor"]))
    return page.to_json()


async def _pause(ctx: Ctx, pause: bool) -> Any:
    settings, rec_id, own = ctx.app[SETTINGS], ctx.path["id"], ctx.who.contract_id
    return await db(ctx.app, lambda s: recording_pause.set_paused(
        s, settings, rec_id, pause, datetime.now(UTC), own))


async def pause_recording(ctx: Ctx) -> Any:
    return await _pause(ctx, True)


async def resume_recording(ctx: Ctx) -> Any:
    return await _pause(ctx, False)


async def get_recording(ctx: Ctx) -> Any:
    rec_dir = ctx.app[SETTINGS].recordings_dir
    row, code = await db(ctx.app, lambda s: get_recording_row(s, ctx.path["id"],
                                                              ctx.who.contract_id))
    return recording_json(row, code, rec_dir)


def _check_range(request: web.Request | None, size: int) -> None:
    """An unsatisfiable Range is answered here, as a problem+json 416 with
    `Content-Range: bytes */size` (FileResponse would send an empty body)."""
    if request is None or "Range" not in request.headers or "If-Range" in request.headers:
        return
    try:
        rng = request.http_range
    except ValueError:
        rng = None
    start = None if rng is None else rng.start
    if rng is None or (start is not None and start >= size) or (
            start is not None and start < 0 and size == 0) or (
            rng.stop is not None and start is not None and 0 <= rng.stop <= start):
        raise ApiError(416, f"range {request.headers['Range'][:40]!r} is not satisfiable: "
                       f"the file has {size} bytes", {"Content-Range": f"bytes */{size}"})


def audio_response(row: Recording, recordings_dir: Path, download: bool,
                   request: web.Request | None = None) -> web.FileResponse:
    """The WAV with HTTP range support (FileResponse answers Range / If-Range with 206; an
    unsatisfiable range is a JSON 416)."""
    if row.status == "recording":
        raise ApiError(409, f"recording {row.id} is still in progress")
    root = recordings_dir.resolve()
    path = (root / row.path).resolve()
    # Paths are ours (REC-FILE-1), but a row must never lead outside the recordings root.
    if not path.is_relative_to(root) or not path.is_file():
        raise ApiError(404, f"the file of recording {row.id} is missing")
    _check_range(request, path.stat().st_size)
    disposition = "attachment" if download else "inline"
    # Issue #14: an encrypted recording is served as the age file it is, never as audio.
    kind, name = (("application/octet-stream", f"recording-{row.id}.wav.age")
                  if row.encrypted else ("audio/wav", f"recording-{row.id}.wav"))
    if row.encrypted:
        disposition = "attachment"
    return web.FileResponse(path, headers={
        "Content-Type": kind,
        "Content-Disposition": f'{disposition}; filename="{name}"',
        "Cache-Control": "private, no-store",
        "X-Content-Type-Options": "nosniff",
    })


async def recording_audio(ctx: Ctx) -> Any:
    row, _ = await db(ctx.app, lambda s: get_recording_row(s, ctx.path["id"],
                                                           ctx.who.contract_id))
    return audio_response(row, ctx.app[SETTINGS].recordings_dir, ctx.query["download"],
                          ctx.request)


async def purge_recordings(ctx: Ctx) -> Any:
    dry_run = ctx.body.get("dry_run", False)
    report = await db(ctx.app, lambda s: recordings.purge(s, ctx.app[SETTINGS],
                                                          datetime.now(UTC), dry_run))
    return {**dataclasses.asdict(report), "dry_run": dry_run}


async def reconcile_recordings(ctx: Ctx) -> Any:
    report = await db(ctx.app, lambda s: recordings.reconcile(s, ctx.app[SETTINGS]))
    return dataclasses.asdict(report)


# ---- billing (BILL-*) ---------------------------------------------------------------------
async def billing_report(ctx: Ctx) -> Any:
    limit, offset = _paging(ctx)
    code = ctx.own_contract(ctx.query["contract"])
    report = await db(ctx.app, lambda s: billing.report(s, ctx.query["month"], code, limit,
                                                        offset))
    return report.to_json()


async def get_prices(ctx: Ctx) -> Any:
    month = ctx.query["month"]
    return (await db(ctx.app, lambda s: billing.prices(s, today(), month))).to_json()


async def set_prices(ctx: Ctx) -> Any:
    values = {k: v for k, v in ctx.body.items() if k not in ("from", "force_past")}
    who = ctx.who.actor()  # kept with each price written (price history's audit)
    return (await db(ctx.app, lambda s: billing.set_prices(
        s, values, today(), ctx.body.get("from"), ctx.body.get("force_past", False),
        actor=who))).to_json()


async def price_history(ctx: Ctx) -> Any:
    limit, offset = _paging(ctx)
    return (await db(ctx.app, lambda s: billing.price_history(s, limit, offset))).to_json()


# ---- configuration check (ADM-1) ----------------------------------------------------------
async def check(ctx: Ctx) -> Any:
    settings = ctx.app[SETTINGS]
    try:
        report = await db(ctx.app, lambda s: asterisk_check.run_check(s, settings))
    except AsteriskUnavailable as exc:
        raise ApiError(503, f"cannot check: {exc}") from exc
    return report.to_json()


# ---- the table ----------------------------------------------------------------------------
def routes() -> list[Route]:
    op, any_, R = Access.OPERATOR, Access.ANY, Route
    q_date = Param("on", "query", S.DATE, description="first day without it (default today)")
    q_str = Param  # readability below
    return [
        R("GET", f"{API}/contracts", "listContracts", "List contracts", "contracts", any_,
          list_contracts, PAGING, response=S.page_of(S.CONTRACT),
          description="A contract token sees only its own contract."),
        R("POST", f"{API}/contracts", "createContract", "Create a contract", "contracts", op,
          create_contract, body=S.CONTRACT_CREATE, status=201, response=S.CONTRACT,
          errors=(409,)),
        R("GET", f"{API}/contracts/{{code}}", "getContract", "One contract", "contracts", any_,
          get_contract, (P_CODE,), response=S.CONTRACT),
        R("PATCH", f"{API}/contracts/{{code}}", "updateContract", "Change a contract",
          "contracts", op, update_contract, (P_CODE,), body=S.CONTRACT_UPDATE,
          response=S.CONTRACT, errors=(409,)),
        R("DELETE", f"{API}/contracts/{{code}}", "deleteContract",
          "Delete a contract without endpoints or recordings", "contracts", op,
          delete_contract, (P_CODE,), status=204, errors=(409,),
          description="Refused (409) while it has endpoints or recordings, and once it has "
          "had any service: its past bills would go with it; cancel its services instead."),
        R("GET", f"{API}/contracts/{{code}}/subscriptions", "getSubscriptions",
          "A contract's services", "subscriptions", any_, get_subscriptions, (P_CODE,),
          response=S.SUBSCRIPTIONS),
        R("PUT", f"{API}/contracts/{{code}}/subscriptions/recording", "setRecording",
          "Subscribe to call recording, or change its retention", "subscriptions", op,
          set_recording, (P_CODE,), body=S.RECORDING_SET, response=S.SUBSCRIPTIONS,
          errors=(409,),
          description="After a cancellation, a new subscription (a new period, with a new "
          "initial fee; earlier periods stay billed). While a cancellation is still to come, "
          "it revokes that cancellation instead (no new initial fee)."),
        R("DELETE", f"{API}/contracts/{{code}}/subscriptions/recording", "cancelRecording",
          "Cancel call recording", "subscriptions", op, cancel_recording, (P_CODE, q_date),
          response=S.SUBSCRIPTIONS, errors=(409,)),
        R("POST", f"{API}/contracts/{{code}}/subscriptions/{{service}}/void", "voidPeriod",
          "Void a service's latest period entered by mistake (not billed)", "subscriptions",
          op, void_period, (P_CODE, Param("service", "path",
                                          S.s("string", enum=["recording", "nuisance"]))),
          body=S.VOID_SET, response=S.VOIDED, errors=(409,),
          description="The period that began on `activated_on` is not billed (nor the unit "
          "changes made in it) and the subscription goes back to the period before it "
          "(cancelled), or away when there was none: recording or screening stops. Refused "
          "(409, nothing written) when it is not the latest period, when it was active before "
          "this month (its bills may have been sent) unless `force_past`, or when calls were "
          "recorded under it. Answers the audit row: who voided it (this token), when, why."),
        R("GET", f"{API}/voided-periods", "listVoidedPeriods",
          "Periods voided as entered by mistake: what they were, who, when, why",
          "subscriptions", op, list_voided, (Q_CONTRACT, *PAGING),
          response=S.page_of(S.VOIDED), description="Newest first."),
        R("GET", f"{API}/contracts/{{code}}/recording-options", "getRecordingOptions",
          "A contract's recording options", "subscriptions", any_, get_recording_options,
          (P_CODE,), response=S.RECORDING_OPTIONS),
        R("PUT", f"{API}/contracts/{{code}}/recording-options", "setRecordingOptions",
          "Change recording options (stereo, announcement per direction, age public key)",
          "subscriptions", op, set_recording_options, (P_CODE,), body=S.RECORDING_OPTIONS_SET,
          response=S.RECORDING_OPTIONS,
          description="All off by default. With a public key (age X25519 recipient), closed "
          "recordings are stored encrypted to it; this server cannot decrypt them; null "
          "stops encrypting new ones."),
        R("PUT", f"{API}/contracts/{{code}}/subscriptions/nuisance", "setNuisance",
          "Subscribe to nuisance-call rejection, or change its unit or list size",
          "subscriptions", op, set_nuisance, (P_CODE,), body=S.NUISANCE_SET,
          response=S.SUBSCRIPTIONS, errors=(409,),
          description="A unit change starts new, empty lists and counters and is billed as "
          "construction work (NCR-UNIT-1)."),
        R("DELETE", f"{API}/contracts/{{code}}/subscriptions/nuisance", "cancelNuisance",
          "Cancel nuisance-call rejection", "subscriptions", op, cancel_nuisance,
          (P_CODE, q_date), response=S.SUBSCRIPTIONS, errors=(409,)),
        R("GET", f"{API}/subscriptions", "listSubscriptions", "Every contract's services",
          "subscriptions", op, list_subscriptions, PAGING,
          response=S.page_of(S.SUBSCRIPTIONS)),
        R("GET", f"{API}/nuisance-lists", "listNuisanceLists",
          "Nuisance lists: sizes and monthly counters, never the numbers (NCR-PRIV-1)",
          "subscriptions", any_, list_nuisance_lists, (Q_CONTRACT, *PAGING),
          response=S.page_of(S.NUISANCE_LIST)),

        R("GET", f"{API}/endpoints", "listEndpoints", "List endpoints", "endpoints", any_,
          list_endpoints, (Q_CONTRACT, *PAGING), response=S.page_of(S.ENDPOINT)),
        R("POST", f"{API}/endpoints", "createEndpoint", "Create an endpoint", "endpoints", op,
          create_endpoint, body=S.ENDPOINT_CREATE, status=201, response=S.ENDPOINT,
          errors=(404, 409)),
        R("GET", f"{API}/endpoints/{{name}}", "getEndpoint", "One endpoint", "endpoints", any_,
          get_endpoint, (P_ENDPOINT,), response=S.ENDPOINT),
        R("PATCH", f"{API}/endpoints/{{name}}", "updateEndpoint",
          "Change an endpoint (address, extension, channels, roaming)", "endpoints", op,
          update_endpoint, (P_ENDPOINT,), body=S.ENDPOINT_UPDATE, response=S.ENDPOINT,
          errors=(409,)),
        R("DELETE", f"{API}/endpoints/{{name}}", "deleteEndpoint",
          "Delete an endpoint that rings no number", "endpoints", op, delete_endpoint,
          (P_ENDPOINT,), status=204, errors=(409,)),

        R("GET", f"{API}/numbers", "listNumbers", "List numbers", "numbers", any_,
          list_numbers, (Q_CONTRACT, q_str("endpoint", "query", S.ENDPOINT_NAME), *PAGING),
          response=S.page_of(S.NUMBER_OUT), errors=(404,)),
        R("POST", f"{API}/numbers", "createNumber", "Add a number to an endpoint's contract",
          "numbers", op, create_number, body=S.NUMBER_CREATE, status=201,
          response=S.NUMBER_OUT, errors=(404, 409)),
        R("GET", f"{API}/numbers/{{number}}", "getNumber", "One number", "numbers", any_,
          get_number, (P_NUMBER,), response=S.NUMBER_OUT),
        R("PATCH", f"{API}/numbers/{{number}}", "updateNumber",
          "Move a number, change its role or nuisance subscription", "numbers", op,
          update_number, (P_NUMBER,), body=S.NUMBER_UPDATE, response=S.NUMBER_OUT,
          errors=(409,)),
        R("DELETE", f"{API}/numbers/{{number}}", "deleteNumber",
          "Delete a number (its nuisance list goes with it)", "numbers", op, delete_number,
          (P_NUMBER,), status=204, errors=(409,)),

        R("GET", f"{API}/priority-lines", "listPriorityLines", "Disaster-priority lines",
          "priority", op, list_priority, PAGING, response=S.page_of(S.PRIORITY)),
        R("POST", f"{API}/priority-lines", "addPriorityLine", "Add a disaster-priority line",
          "priority", op, add_priority, body=S.PRIORITY_CREATE, status=201,
          response=S.PRIORITY, errors=(409,)),
        R("DELETE", f"{API}/priority-lines/{{number}}", "deletePriorityLine",
          "Remove a disaster-priority line", "priority", op, delete_priority, (P_NUMBER,),
          status=204),

        R("GET", f"{API}/recordings", "searchRecordings", "Search recordings, newest first",
          "recordings", any_, search_recordings, (
              Q_CONTRACT, q_str("number", "query", S.NUMBER, description="our number"),
              q_str("remote", "query", {"type": "string", "maxLength": 40},
                    description="the other party as presented"),
              q_str("direction", "query", {"type": "string", "enum": ["in", "out"]}),
              q_str("since", "query", S.DATE_TIME, description="started at or after"),
              q_str("until", "query", S.DATE_TIME, description="started before"),
              q_str("cursor", "query", {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,200}$"},
                    description="next_cursor of the previous page (keyset paging: stable "
                    "while rows are added; use instead of offset)"),
              *PAGING),
          response=S.page_of(S.RECORDING),
          description="A contract token sees only its own recordings (REC-FILE-4)."),
        R("GET", f"{API}/recordings/{{id}}", "getRecording", "One recording's metadata",
          "recordings", any_, get_recording, (P_REC_ID,), response=S.RECORDING),
        R("POST", f"{API}/recordings/{{id}}/pause", "pauseRecording",
          "Pause a recording in progress (the call goes on)", "recordings", any_,
          pause_recording, (P_REC_ID,), response=S.PAUSE_STATE, errors=(409, 503),
          description="MixMonitorMute: the file holds silence until resumed; the row keeps "
          "the muted interval (issue #14)."),
        R("POST", f"{API}/recordings/{{id}}/resume", "resumeRecording",
          "Resume a paused recording", "recordings", any_, resume_recording, (P_REC_ID,),
          response=S.PAUSE_STATE, errors=(409, 503)),
        R("GET", f"{API}/recordings/{{id}}/audio", "getRecordingAudio",
          "Download a recording (HTTP Range supported)", "recordings", any_, recording_audio,
          (P_REC_ID, Param("download", "query", {"type": "boolean", "default": False},
                       description="as an attachment")),
          response=None, errors=(409, 416),
          extra={"x-range": "Range: bytes=… answers 206 Partial Content"}),
        R("HEAD", f"{API}/recordings/{{id}}/audio", "headRecordingAudio",
          "A recording's size and type without its body", "recordings", any_, recording_audio,
          (P_REC_ID, Param("download", "query", {"type": "boolean", "default": False},
                       description="as an attachment")),
          response=None, errors=(409,)),
        R("POST", f"{API}/recordings/purge", "purgeRecordings",
          "Delete recordings past their contract's retention (REC-FILE-3)", "recordings", op,
          purge_recordings, body=S.PURGE, response=S.PURGE_REPORT),
        R("POST", f"{API}/recordings/reconcile", "reconcileRecordings",
          "Finish rows and files left by a crash (REC-FILE-2)", "recordings", op,
          reconcile_recordings, response=S.RECONCILE_REPORT),

        R("GET", f"{API}/forwardings", "listForwardings", "Forwarded numbers (REC-IN-2)",
          "forwarding", any_, list_forwarding, (Q_CONTRACT, *PAGING),
          response=S.page_of(S.FORWARDING)),
        R("GET", f"{API}/numbers/{{number}}/forwarding", "getForwarding",
          "A number's forwarding", "forwarding", any_, get_forwarding, (P_NUMBER,),
          response=S.FORWARDING),
        R("PUT", f"{API}/numbers/{{number}}/forwarding", "setForwarding",
          "Forward a number to an outside number (calls are recorded too)", "forwarding", op,
          set_forwarding, (P_NUMBER,), body=S.FORWARDING_SET, response=S.FORWARDING),
        R("DELETE", f"{API}/numbers/{{number}}/forwarding", "clearForwarding",
          "Stop forwarding a number", "forwarding", op, clear_forwarding, (P_NUMBER,),
          status=204),
        R("GET", f"{API}/recording-capacity", "getRecordingCapacity",
          "The concurrent-recording maximum and its policy (REC-CAP-1)", "recordings", op,
          get_capacity, response=S.CAPACITY),
        R("PUT", f"{API}/recording-capacity", "setRecordingCapacity",
          "Change the concurrent-recording maximum or policy, or reset both", "recordings", op,
          set_capacity, body=S.CAPACITY_SET, response=S.CAPACITY,
          description="Both call shells pick the change up within a few seconds; priority "
          "calls always connect (unrecorded) at the maximum."),

        R("GET", f"{API}/bills", "billingReport", "Monthly bills in JPY (BILL-*)", "billing",
          any_, billing_report, (
              Param("month", "query", S.MONTH, required=True), Q_CONTRACT, *PAGING),
          response=S.BILLING_REPORT,
          description="A contract token gets only its own bill. `subtotal`, `tax` and "
          "`total` are the month's over every contract, whatever page is returned; "
          "`page_subtotal`, `page_tax` and `page_total` sum this page's bills."),
        R("GET", f"{API}/prices", "getPrices",
          "The price table a month is billed with (JPY, excluding tax)", "billing", op,
          get_prices, (Param("month", "query", S.MONTH,
                             description="the month billed (default: this month)"),),
          response=S.PRICES,
          description="A month is billed with the table in force on its first day; "
          "`prices_from` is the month that table is in force from (null: the defaults)."),
        R("PATCH", f"{API}/prices", "setPrices", "Change prices from a month's bill on",
          "billing", op, set_prices, body=S.PRICES_SET, response=S.PRICES, errors=(409,),
          description="The prices given apply from the bill of `from` (default: this month, "
          "Tokyo time) on, until a later change of the same price; earlier months keep "
          "theirs. A `from` before this month is refused (409: its bills may have been "
          "sent) unless `force_past` is true. Answers the table in force in `from`."),
        R("GET", f"{API}/prices/history", "getPriceHistory",
          "Every price change: the month it applies from, what changed, the whole table",
          "billing", op, price_history, PAGING, response=S.page_of(S.PRICE_VERSION),
          description="Oldest first; the first entry is the defaults (`prices_from` null) "
          "unless a change applies from the very first month."),

        R("GET", f"{API}/check", "checkAsterisk",
          "Compare Asterisk's live endpoints with the database", "check", op, check,
          response=S.CHECK_REPORT),

        R("GET", f"{API}/tokens", "listTokens", "API tokens (never the tokens themselves)",
          "tokens", op, list_tokens, (Q_CONTRACT, *PAGING), response=S.page_of(S.TOKEN)),
        R("POST", f"{API}/tokens", "createToken", "A new token, shown once", "tokens", op,
          create_token, body=S.TOKEN_CREATE, status=201, response=S.TOKEN_CREATED,
          errors=(404,)),
        R("DELETE", f"{API}/tokens/{{id}}", "revokeToken", "Revoke a token", "tokens", op,
          revoke_token, (P_TOKEN_ID,), status=204),
    ]
