"""JSON Schemas of the HTTP API: published in the OpenAPI document and used, the very same
objects, to validate every request before anything is written (ADM-2, REL-4).

The validator covers the JSON Schema subset these schemas use (type, properties, required,
additionalProperties, enum, pattern, min/max, minLength/maxLength, minProperties, nullable
types as a list, format date / date-time). Query strings are converted to their declared type.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError, by_relevance

from callguard.db import billing_repo
from callguard.domain.billing import price_maximum
from callguard.domain.nuisance import TOKYO
from callguard.services import (
    base,
    capacity,
    contracts,
    endpoints,
    forwarding,
    numbers,
    subscriptions,
    tokens,
)

Schema = dict[str, Any]


class SchemaError(ValueError):
    """The input does not match; the message names the field."""


# ---- validation ---------------------------------------------------------------------------
# `jsonschema` checks requests against the very schemas the OpenAPI document publishes, with
# format checking on (an endpoint address of "not-an-ip" is refused). A date-time may omit its
# offset (a naive time is Japanese), so that one format is checked by the standard library.
FORMATS = FormatChecker(formats=("date", "ipv4", "ipv6"))


@FORMATS.checks("date-time", raises=ValueError)
def _is_date_time(value: object) -> bool:
    if isinstance(value, str):
        datetime.fromisoformat(value)
    return True


def _where(base: str, path: Iterable[object]) -> str:
    out = base
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _message(err: ValidationError, where: str) -> str:
    at = _where(where, err.absolute_path)
    kind: Any = err.validator
    arg: Any = err.validator_value
    schema: dict[str, Any] = dict(err.schema) if isinstance(err.schema, dict) else {}
    instance: Any = err.instance
    if kind == "required":
        missing = [k for k in arg if isinstance(instance, dict) and k not in instance]
        return f"{at}: missing field(s) {', '.join(missing)}"
    if kind == "additionalProperties":
        props = schema.get("properties", {})
        extra = sorted(k for k in instance if k not in props)
        return f"{at}: unknown field(s) {', '.join(extra)}"
    if kind == "type":
        allowed = arg if isinstance(arg, list) else [arg]
        return f"{at} must be {' or '.join(allowed)}"
    if kind == "enum":
        return f"{at} must be one of {', '.join(map(str, arg))}"
    if kind in ("minimum", "exclusiveMinimum"):
        return f"{at} must be at least {arg}"
    if kind in ("maximum", "exclusiveMaximum"):
        return f"{at} must be at most {arg}"
    if kind == "minLength":
        return f"{at} must not be empty" if arg == 1 else f"{at} is too short"
    if kind == "maxLength":
        return f"{at} must be at most {arg} characters"
    if kind == "pattern":
        return f"{at} has an invalid format: {str(instance)[:40]!r}"
    if kind == "format":
        what = {"date": "a YYYY-MM-DD date", "date-time": "an ISO 8601 date-time",
                "ipv4": "an IPv4 address", "ipv6": "an IPv6 address"}.get(arg, arg)
        return f"{at} must be {what}: {str(instance)[:40]!r}"
    if kind == "minProperties":
        return f"{at} must set at least one of {', '.join(schema.get('properties', {}))}"
    if kind == "anyOf" and "description" in schema:
        return f"{at} is invalid: {str(instance)[:40]!r}; expected {schema['description']}"
    return f"{at} is invalid: {err.message[:120]}"


def _check_text(value: Any, where: str) -> None:
    """JSON may escape a lone surrogate; no database stores it."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise SchemaError(f"{where} is not valid Unicode text") from exc
    elif isinstance(value, dict):
        for k, v in value.items():
            _check_text(k, where)
            _check_text(v, f"{where}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_text(v, f"{where}[{i}]")


def _convert(value: Any, schema: Schema) -> Any:
    """A valid value as the handlers take it: dates parsed, 4.0 as the integer 4."""
    types = schema.get("type")
    if type(value) is float and value.is_integer() and types in ("integer", ["integer"]):
        return int(value)
    if isinstance(value, str):
        fmt = schema.get("format")
        if fmt == "date":
            return date.fromisoformat(value)
        if fmt == "date-time":
            ts = datetime.fromisoformat(value)
            return ts if ts.tzinfo else ts.replace(tzinfo=TOKYO)  # a naive time is Japanese
        return value
    if isinstance(value, dict):
        props: dict[str, Schema] = schema.get("properties", {})
        return {k: _convert(v, props[k]) if k in props else v for k, v in value.items()}
    if isinstance(value, list) and "items" in schema:
        return [_convert(v, schema["items"]) for v in value]
    return value


def validate(value: Any, schema: Schema, where: str = "body") -> Any:
    """`value` if it matches `schema` (JSON Schema 2020-12, formats checked), converted for
    the handlers; else SchemaError naming the field."""
    _check_text(value, where)
    validator = Draft202012Validator(schema, format_checker=FORMATS)
    errors = list(validator.iter_errors(value))
    if errors:
        raise SchemaError(_message(max(errors, key=by_relevance()), where))
    return _convert(value, schema)


def from_query(raw: str, schema: Schema, name: str) -> Any:
    """A query-string value converted to its declared type, then validated."""
    types = schema.get("type")
    value: Any = raw
    if types == "integer":
        if re.fullmatch(r"-?[0-9]{1,20}", raw) is None:
            raise SchemaError(f"query parameter {name} must be an integer")
        value = int(raw)
    elif types == "boolean":
        if raw not in ("true", "false"):
            raise SchemaError(f"query parameter {name} must be true or false")
        value = raw == "true"
    return validate(value, schema, f"query parameter {name}")


# ---- the API's schemas --------------------------------------------------------------------
def s(type_: str | list[str], **kw: Any) -> Schema:
    return {"type": type_, **kw}


def obj(props: dict[str, Schema], required: list[str] | None = None, *, strict: bool = True,
        **kw: Any) -> Schema:
    out: Schema = {"type": "object", "properties": props, **kw}
    if required:
        out["required"] = required
    if strict:
        out["additionalProperties"] = False
    return out


TEXT = s("string", maxLength=base.MAX_TEXT, pattern=r"^[^\x00-\x1f]*$")
LABEL = s("string", maxLength=tokens.MAX_LABEL, pattern=r"^[^\x00-\x1f]*$")
CODE = s("string", pattern=base.CONTRACT_CODE_RE, description="contract code, e.g. F1")
ENDPOINT_NAME = s("string", pattern=base.ENDPOINT_NAME_RE)
NUMBER = s("string", pattern=base.NUMBER_RE, description="national format, e.g. 0312345678")
REMOTE = s("string", maxLength=40, pattern=r"^[^\x00-\x1f]*$",
           description="the other party as presented")
DATE = s("string", format="date", pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
DATE_TIME = s("string", format="date-time")
MONTH = s("string", pattern=billing_repo.MONTH_RE, description="YYYY-MM (Asia/Tokyo)")
NULLABLE_DATE = s(["string", "null"], format="date")
TIMESTAMP = s("string", format="date-time")

# RFC 9457 problem details.
ERROR = obj({"type": s("string"), "title": s("string"), "status": s("integer"),
             "detail": s("string"), "instance": s("string")},
            ["type", "title", "status", "detail"], strict=False)


def page_of(item: Schema) -> Schema:
    return obj({"items": s("array", items=item), "limit": s(["integer", "null"]),
                "offset": s("integer"), "next_offset": s(["integer", "null"]),
                "next_cursor": s("string", description="keyset paging: pass as cursor")},
               ["items", "limit", "offset", "next_offset"], strict=False)


RECORDING_SUB = s(["object", "null"], properties={
    "activated_on": DATE, "cancelled_on": NULLABLE_DATE, "retention_days": s("integer"),
    "active": s("boolean")}, required=["activated_on", "cancelled_on", "retention_days",
                                        "active"])
NUISANCE_SUB = s(["object", "null"], properties={
    "unit": s("string", enum=list(subscriptions.UNITS)), "list_size": s("integer"),
    "activated_on": DATE, "cancelled_on": NULLABLE_DATE, "active": s("boolean")},
    required=["unit", "list_size", "activated_on", "cancelled_on", "active"])

CONTRACT = obj({
    "code": s("string"), "kind": s("string", enum=list(contracts.KINDS)), "name": s("string"),
    "extension_digits": s("integer"), "created_at": TIMESTAMP, "endpoints": s("integer"),
    "channels": s("integer"), "numbers": s("integer"), "recording": RECORDING_SUB,
    "nuisance": NUISANCE_SUB,
}, ["code", "kind", "name", "extension_digits", "endpoints", "channels", "numbers",
    "recording", "nuisance"], strict=False)
CONTRACT_CREATE = obj({
    "code": CODE, "kind": s("string", enum=list(contracts.KINDS)), "name": TEXT,
    "extension_digits": s("integer", minimum=2, maximum=6),
}, ["code", "kind"])
CONTRACT_UPDATE = obj({"name": TEXT, "extension_digits": s("integer", minimum=2, maximum=6)},
                      minProperties=1)

ENDPOINT = obj({
    "name": s("string"), "contract": s("string"), "address": s("string"),
    "extension": s("string"), "channels": s("integer"), "roaming": s("boolean"),
    "numbers": s("array", items=s("string")), "created_at": TIMESTAMP,
}, ["name", "contract", "address", "extension", "channels", "roaming", "numbers"],
    strict=False)
_ADDRESS = s("string", maxLength=45, anyOf=[{"format": "ipv4"}, {"format": "ipv6"}],
             description="an IPv4 or IPv6 source address")
_EXTENSION = s("string", pattern=base.EXTENSION_RE)
_CHANNELS = s("integer", minimum=1, maximum=endpoints.MAX_CHANNELS)
ENDPOINT_CREATE = obj({
    "name": ENDPOINT_NAME, "contract": CODE, "address": _ADDRESS, "extension": _EXTENSION,
    "channels": _CHANNELS, "roaming": s("boolean"),
}, ["name", "contract", "address", "extension"])
ENDPOINT_UPDATE = obj({"address": _ADDRESS, "extension": _EXTENSION, "channels": _CHANNELS,
                       "roaming": s("boolean")}, minProperties=1)

NUMBER_OUT = obj({
    "number": s("string"), "contract": s("string"), "endpoint": s("string"),
    "role": s("string", enum=list(numbers.ROLES)), "nuisance": s("boolean"),
    "created_at": TIMESTAMP,
}, ["number", "contract", "endpoint", "role", "nuisance"], strict=False)
NUMBER_CREATE = obj({"number": NUMBER, "endpoint": ENDPOINT_NAME,
                     "role": s("string", enum=list(numbers.ROLES)),
                     "nuisance": s("boolean")}, ["number", "endpoint", "role"])
NUMBER_UPDATE = obj({"endpoint": ENDPOINT_NAME, "role": s("string", enum=list(numbers.ROLES)),
                     "nuisance": s("boolean")}, minProperties=1)

SUBSCRIPTIONS = obj({"contract": s("string"), "recording": RECORDING_SUB,
                     "nuisance": NUISANCE_SUB}, ["contract", "recording", "nuisance"],
                    strict=False)
# Voiding a period entered by mistake (BILL): the body names the period, the answer is the
# audit row kept.
VOID_SET = obj({"activated_on": {**DATE, "description": "the day the period to void began"},
                "force_past": s("boolean", default=False, description="allow a period "
                                "active before this month (its bills may have been sent)"),
                "reason": {**TEXT, "description": "why (kept in the audit)"}},
               ["activated_on"])
VOIDED = obj({"id": s("integer"), "contract": s("string"),
              "service": s("string", enum=["recording", "nuisance"]),
              "activated_on": s("string", format="date"), "cancelled_on": NULLABLE_DATE,
              "unit": s(["string", "null"]), "unit_changes": s("integer"),
              "reason": s("string"), "voided_by": s("string"), "voided_at": TIMESTAMP},
             ["id", "contract", "service", "activated_on", "cancelled_on", "unit",
              "unit_changes", "reason", "voided_by", "voided_at"], strict=False)
RECORDING_SET = obj({"activated_on": DATE,
                     "retention_days": s("integer", minimum=1,
                                         maximum=subscriptions.MAX_RETENTION_DAYS)})
NUISANCE_SET = obj({"unit": s("string", enum=list(subscriptions.UNITS)),
                    "list_size": s("integer", enum=list(subscriptions.LIST_SIZES)),
                    "activated_on": DATE})

NUISANCE_LIST = obj({
    "list": s("integer"), "contract": s("string"), "number": s(["string", "null"]),
    "unit": s("string"), "entries": s("integer"), "capacity": s("integer"),
    "this_month": s("integer"), "last_month": s(["integer", "null"]),
    "months": s("array", items=obj({"month": s("string"), "count": s("integer")},
                                   ["month", "count"], strict=False)),
}, ["list", "contract", "number", "unit", "entries", "capacity", "this_month", "last_month",
    "months"], strict=False)

PRIORITY = obj({"number": s("string"), "description": s("string")}, ["number", "description"],
               strict=False)
PRIORITY_CREATE = obj({"number": NUMBER, "description": TEXT}, ["number"])

TOKEN = obj({"id": s("integer"), "contract": s(["string", "null"]), "label": s("string"),
             "created_at": TIMESTAMP}, ["id", "contract", "label"], strict=False)
TOKEN_CREATED = obj({**TOKEN["properties"], "token": s("string")},
                    ["id", "contract", "label", "token"], strict=False)
TOKEN_CREATE = obj({"contract": s(["string", "null"], pattern=base.CONTRACT_CODE_RE,
                                  description="null or absent: an operator token"),
                    "label": LABEL})

# Issue #14: paused intervals of a recording.
MUTED = s("array", items=obj({"from": s("string"), "until": s(["string", "null"])},
                             ["from", "until"]))
RECORDING = obj({
    "id": s("integer"), "contract": s("string"), "number": s("string"),
    "direction": s("string", enum=["in", "out"]), "remote": s("string"),
    "started_at": TIMESTAMP, "answered_at": s(["string", "null"], format="date-time"),
    "ended_at": s(["string", "null"], format="date-time"),
    "duration_s": s(["number", "null"]), "bytes": s(["integer", "null"]),
    "sha256": s(["string", "null"]),
    "status": s("string", enum=["recording", "complete", "failed"]),
    "reason": s(["string", "null"]), "audio_url": s("string"),
    "encrypted": s("boolean"), "sha256_of": s("string", enum=["wav", "age ciphertext"]),
    "muted": MUTED,
}, ["id", "contract", "number", "direction", "remote", "started_at", "status", "audio_url"],
    strict=False)
PAUSE_STATE = obj({"id": s("integer"), "paused": s("boolean"), "muted": MUTED},
                  ["id", "paused", "muted"])
# Issue #14: per-contract recording options.
RECORDING_OPTIONS = obj({
    "contract": s("string"), "stereo": s("boolean"), "announce_in": s("boolean"),
    "announce_out": s("boolean"), "public_key": s(["string", "null"]), "encrypted": s("boolean"),
    "pause_code": s(["string", "null"]), "resume_code": s(["string", "null"]),
}, ["contract", "stereo", "announce_in", "announce_out", "public_key", "encrypted",
    "pause_code", "resume_code"])
RECORDING_OPTIONS_SET = obj({
    "stereo": s("boolean"), "announce_in": s("boolean"), "announce_out": s("boolean"),
    "public_key": s(["string", "null"], maxLength=200),
    "pause_code": s(["string", "null"], maxLength=4),
    "resume_code": s(["string", "null"], maxLength=4),
})
# Forwarding (REC-IN-2) and the recording capacity (REC-CAP-1), issue #15.
FORWARDING = obj({"number": s("string"), "mode": s("string", enum=list(forwarding.MODES)),
                  "to": s("string"), "after_s": s("integer")},
                 ["number", "mode", "to", "after_s"], strict=False)
FORWARDING_SET = obj({
    "mode": s("string", enum=list(forwarding.MODES)),
    "to": s("string", pattern=forwarding.TARGET_RE, description="an outside number"),
    "after_s": s("integer", minimum=forwarding.MIN_AFTER_S, maximum=forwarding.MAX_AFTER_S,
                 description="no-answer only: seconds of ringing first (default 20)"),
}, ["mode", "to"])
_POLICY = s("string", enum=list(capacity.POLICIES),
            description="what ordinary calls get at the maximum")
CAPACITY = obj({"max_recordings": s("integer"), "at_capacity_policy": _POLICY,
                "source": obj({k: s("string", enum=["site_settings", "default"])
                               for k in capacity.KEYS}, strict=False),
                "active_recordings": s("integer")},
               ["max_recordings", "at_capacity_policy", "source", "active_recordings"],
               strict=False)
CAPACITY_SET = obj({"max_recordings": s("integer", minimum=0,
                                          maximum=capacity.MAX_RECORDINGS),
                    "at_capacity_policy": _POLICY,
                    "reset": s("boolean", description="back to the process defaults")},
                   minProperties=1)
PURGE = obj({"dry_run": s("boolean")})
PURGE_REPORT = obj({"rows": s("integer"), "files": s("integer"), "bytes": s("integer"),
                    "dry_run": s("boolean")}, ["rows", "files", "bytes", "dry_run"],
                   strict=False)
RECONCILE_REPORT = obj({k: s("integer") for k in (
    "checked", "still_live", "completed", "failed", "repaired_headers", "orphan_files")}
    | {"asterisk_unreachable": s("boolean")}, strict=False)

LINE_ITEM = obj({"code": s("string"), "description": s("string"), "quantity": s("integer"),
                 "unit_price": s("integer"), "amount": s("integer")},
                ["code", "description", "quantity", "unit_price", "amount"], strict=False)
_PRICES_FROM = s(["string", "null"], description="YYYY-MM the table is in force from (a "
                 "month is billed with the table in force on its first day); null: the "
                 "defaults, no change in force by then")
BILL = obj({"contract": s("string"), "month": s("string"), "currency": s("string"),
            "items": s("array", items=LINE_ITEM), "subtotal": s("integer"),
            "tax": s("integer"), "total": s("integer"),
            "prices_from": _PRICES_FROM},  # the price table this bill was computed with
           ["contract", "month", "items", "subtotal", "tax", "total", "prices_from"],
           strict=False)
BILLING_REPORT = obj({
    "month": s("string"), "currency": s("string"), "bills": s("array", items=BILL),
    "errors": s("array", items=obj({"contract": s("string"), "message": s("string")},
                                   ["contract", "message"], strict=False)),
    "subtotal": s("integer", description="the month's, over every contract (all pages)"),
    "tax": s("integer", description="the month's, over every contract (all pages)"),
    "total": s("integer", description="the month's, over every contract (all pages)"),
    "contracts": s("integer", description="contracts in the month's report (all pages)"),
    "unbilled": s("integer", description="of those, how many could not be billed"),
    "page_subtotal": s("integer", description="this page's bills only"),
    "page_tax": s("integer", description="this page's bills only"),
    "page_total": s("integer", description="this page's bills only"),
    "next_offset": s(["integer", "null"]),
    "prices_from": _PRICES_FROM,  # the price table the month was billed with
}, ["month", "bills", "errors", "subtotal", "tax", "total", "contracts", "unbilled",
    "page_subtotal", "page_tax", "page_total", "next_offset", "prices_from"], strict=False)
_PRICE = {name: s("integer", minimum=0, maximum=price_maximum(name))
          for name in billing_repo.PRICE_FIELDS}  # PriceTable's own bounds (CLI alike)
PRICES = obj({**_PRICE, "prices_from": _PRICES_FROM}, [*_PRICE, "prices_from"], strict=False)
PRICES_SET = obj({
    **_PRICE,
    "from": {**MONTH, "description": "the first month billed at these prices, YYYY-MM "
             "(default: this month, Asia/Tokyo)"},
    "force_past": s("boolean", default=False, description="allow a `from` before this month "
                    "(re-prices months whose bills may have been sent)"),
}, anyOf=[{"required": [name]} for name in _PRICE],
    description="at least one price (NAME: yen), with from (YYYY-MM) and force_past optional")
_CHANGED_BY = s(["string", "null"], description="who set it: `cli:<OS user>` or "
                "`api:<role>:token-<id>` (with the token's label in parentheses, never the "
                "token); null: unknown (set before this was recorded) or the defaults")
_CHANGED_AT = s(["string", "null"], format="date-time",
                description="when it was set; null: unknown, or the defaults")
PRICE_VERSION = obj({
    **_PRICE, "prices_from": _PRICES_FROM,
    "changed": obj(_PRICE, strict=False, description="the prices set from this month"),
    "changed_by": {**_CHANGED_BY, "description": "the month's latest known writer: "
                   + _CHANGED_BY["description"]},
    "changed_at": _CHANGED_AT,
    "audit": obj({}, strict=False, additionalProperties=obj(
        {"changed_by": _CHANGED_BY, "changed_at": _CHANGED_AT},
        ["changed_by", "changed_at"], strict=False),
        description="each price set from this month (as in `changed`): who set it and when"),
}, [*_PRICE, "prices_from", "changed", "changed_by", "changed_at", "audit"], strict=False)

_CHECK_ITEM = obj({"endpoint": s("string"), "problem": s("string"), "detail": s("string"),
                   # identify-* problems (SEC-1): the identify section at fault
                   "identify": s("string")},
                  ["endpoint", "problem", "detail"], strict=False)
CHECK_REPORT = obj({
    "ok": s("boolean"), "checked": s("integer"), "ignored": s("array", items=s("string")),
    "mismatches": s("array", items=_CHECK_ITEM),
    "warnings": s("array", items=_CHECK_ITEM),  # provisioning that agrees but will surprise
    "identifies": s("integer"),  # identify objects compared, whatever their names (SEC-1)
}, ["ok", "checked", "mismatches", "ignored", "warnings"], strict=False)
