"""JSON Schemas of the HTTP API: published in the OpenAPI document and used, the very same
objects, to validate every request before anything is written (ADM-2, REL-4).

The validator covers the JSON Schema subset these schemas use (type, properties, required,
additionalProperties, enum, pattern, min/max, minLength/maxLength, minProperties, nullable
types as a list, format date / date-time). Query strings are converted to their declared type.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any

from callguard import admin, billing_repo
from callguard.domain.nuisance import TOKYO

Schema = dict[str, Any]


class SchemaError(ValueError):
    """The input does not match; the message names the field."""


# ---- validation ---------------------------------------------------------------------------
_TYPES: dict[str, Any] = {
    "string": lambda v: isinstance(v, str),
    # JSON Schema: 4.0 is an integer too; a JSON true is not 1.
    "integer": lambda v: type(v) is int or (type(v) is float and v.is_integer()),
    "number": lambda v: type(v) in (int, float),
    "boolean": lambda v: type(v) is bool,
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "null": lambda v: v is None,
}


def validate(value: Any, schema: Schema, where: str = "body") -> Any:
    """`value` if it matches `schema`, with format date/date-time strings parsed."""
    types = schema.get("type")
    if types is not None:
        allowed = types if isinstance(types, list) else [types]
        if not any(_TYPES[t](value) for t in allowed):
            raise SchemaError(f"{where} must be {' or '.join(allowed)}")
    if value is None:
        return None
    if type(value) is float and value.is_integer() and types in ("integer", ["integer"]):
        value = int(value)
    if "enum" in schema and value not in schema["enum"]:
        raise SchemaError(f"{where} must be one of {', '.join(map(str, schema['enum']))}")
    if isinstance(value, str):
        return _string(value, schema, where)
    if type(value) in (int, float):
        if "minimum" in schema and value < schema["minimum"]:
            raise SchemaError(f"{where} must be at least {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            raise SchemaError(f"{where} must be at most {schema['maximum']}")
        return value
    if isinstance(value, dict):
        return _object(value, schema, where)
    if isinstance(value, list) and "items" in schema:
        return [validate(v, schema["items"], f"{where}[{i}]") for i, v in enumerate(value)]
    return value


def _string(value: str, schema: Schema, where: str) -> Any:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:  # JSON may escape a lone surrogate; no database stores it
        raise SchemaError(f"{where} is not valid Unicode text") from exc
    if len(value) < schema.get("minLength", 0):
        raise SchemaError(f"{where} must not be empty")
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        raise SchemaError(f"{where} must be at most {schema['maxLength']} characters")
    if "pattern" in schema and re.search(schema["pattern"], value) is None:
        raise SchemaError(f"{where} has an invalid format: {value[:40]!r}")
    fmt = schema.get("format")
    if fmt == "date":
        try:
            return date.fromisoformat(value)
        except ValueError as exc:
            raise SchemaError(f"{where} must be a YYYY-MM-DD date: {value[:40]!r}") from exc
    if fmt == "date-time":
        try:
            ts = datetime.fromisoformat(value)
        except ValueError as exc:
            raise SchemaError(f"{where} must be an ISO 8601 date-time: {value[:40]!r}") from exc
        return ts if ts.tzinfo else ts.replace(tzinfo=TOKYO)  # a naive time is Japanese
    return value


def _object(value: dict[str, Any], schema: Schema, where: str) -> dict[str, Any]:
    props: dict[str, Schema] = schema.get("properties", {})
    if schema.get("additionalProperties") is False:
        extra = sorted(set(value) - set(props))
        if extra:
            raise SchemaError(f"{where}: unknown field(s) {', '.join(extra)}")
    missing = [k for k in schema.get("required", []) if k not in value]
    if missing:
        raise SchemaError(f"{where}: missing field(s) {', '.join(missing)}")
    if len(value) < schema.get("minProperties", 0):
        raise SchemaError(f"{where} must set at least one of {', '.join(props)}")
    return {k: validate(v, props[k], f"{where}.{k}") if k in props else v
            for k, v in value.items()}


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


TEXT = s("string", maxLength=admin.MAX_TEXT, pattern=r"^[^\x00-\x1f]*$")
LABEL = s("string", maxLength=admin.MAX_LABEL, pattern=r"^[^\x00-\x1f]*$")
CODE = s("string", pattern=admin.CONTRACT_CODE_RE, description="contract code, e.g. F1")
ENDPOINT_NAME = s("string", pattern=admin.ENDPOINT_NAME_RE)
NUMBER = s("string", pattern=admin.NUMBER_RE, description="national format, e.g. 0312345678")
DATE = s("string", format="date", pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
DATE_TIME = s("string", format="date-time")
MONTH = s("string", pattern=billing_repo.MONTH_RE, description="YYYY-MM (Asia/Tokyo)")
NULLABLE_DATE = s(["string", "null"], format="date")
TIMESTAMP = s("string", format="date-time")

ERROR = obj({"status": s("integer"), "message": s("string")}, ["status", "message"],
            strict=False)


def page_of(item: Schema) -> Schema:
    return obj({"items": s("array", items=item), "limit": s(["integer", "null"]),
                "offset": s("integer"), "next_offset": s(["integer", "null"])},
               ["items", "limit", "offset", "next_offset"], strict=False)


RECORDING_SUB = s(["object", "null"], properties={
    "activated_on": DATE, "cancelled_on": NULLABLE_DATE, "retention_days": s("integer"),
    "active": s("boolean")}, required=["activated_on", "cancelled_on", "retention_days",
                                        "active"])
NUISANCE_SUB = s(["object", "null"], properties={
    "unit": s("string", enum=list(admin.UNITS)), "list_size": s("integer"),
    "activated_on": DATE, "cancelled_on": NULLABLE_DATE, "active": s("boolean")},
    required=["unit", "list_size", "activated_on", "cancelled_on", "active"])

CONTRACT = obj({
    "code": s("string"), "kind": s("string", enum=list(admin.KINDS)), "name": s("string"),
    "extension_digits": s("integer"), "created_at": TIMESTAMP, "endpoints": s("integer"),
    "channels": s("integer"), "numbers": s("integer"), "recording": RECORDING_SUB,
    "nuisance": NUISANCE_SUB,
}, ["code", "kind", "name", "extension_digits", "endpoints", "channels", "numbers",
    "recording", "nuisance"], strict=False)
CONTRACT_CREATE = obj({
    "code": CODE, "kind": s("string", enum=list(admin.KINDS)), "name": TEXT,
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
             description="IPv4 or IPv6 source address (checked by the server)")
_EXTENSION = s("string", pattern=admin.EXTENSION_RE)
_CHANNELS = s("integer", minimum=1, maximum=admin.MAX_CHANNELS)
ENDPOINT_CREATE = obj({
    "name": ENDPOINT_NAME, "contract": CODE, "address": _ADDRESS, "extension": _EXTENSION,
    "channels": _CHANNELS, "roaming": s("boolean"),
}, ["name", "contract", "address", "extension"])
ENDPOINT_UPDATE = obj({"address": _ADDRESS, "extension": _EXTENSION, "channels": _CHANNELS,
                       "roaming": s("boolean")}, minProperties=1)

NUMBER_OUT = obj({
    "number": s("string"), "contract": s("string"), "endpoint": s("string"),
    "role": s("string", enum=list(admin.ROLES)), "nuisance": s("boolean"),
    "created_at": TIMESTAMP,
}, ["number", "contract", "endpoint", "role", "nuisance"], strict=False)
NUMBER_CREATE = obj({"number": NUMBER, "endpoint": ENDPOINT_NAME,
                     "role": s("string", enum=list(admin.ROLES)),
                     "nuisance": s("boolean")}, ["number", "endpoint", "role"])
NUMBER_UPDATE = obj({"endpoint": ENDPOINT_NAME, "role": s("string", enum=list(admin.ROLES)),
                     "nuisance": s("boolean")}, minProperties=1)

SUBSCRIPTIONS = obj({"contract": s("string"), "recording": RECORDING_SUB,
                     "nuisance": NUISANCE_SUB}, ["contract", "recording", "nuisance"],
                    strict=False)
RECORDING_SET = obj({"activated_on": DATE,
                     "retention_days": s("integer", minimum=1,
                                         maximum=admin.MAX_RETENTION_DAYS)})
NUISANCE_SET = obj({"unit": s("string", enum=list(admin.UNITS)),
                    "list_size": s("integer", enum=list(admin.LIST_SIZES)),
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
TOKEN_CREATE = obj({"contract": s(["string", "null"], pattern=admin.CONTRACT_CODE_RE,
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
BILL = obj({"contract": s("string"), "month": s("string"), "currency": s("string"),
            "items": s("array", items=LINE_ITEM), "subtotal": s("integer"),
            "tax": s("integer"), "total": s("integer")},
           ["contract", "month", "items", "subtotal", "tax", "total"], strict=False)
BILLING_REPORT = obj({
    "month": s("string"), "currency": s("string"), "bills": s("array", items=BILL),
    "errors": s("array", items=obj({"contract": s("string"), "message": s("string")},
                                   ["contract", "message"], strict=False)),
    "subtotal": s("integer"), "tax": s("integer"), "total": s("integer"),
    "next_offset": s(["integer", "null"]),
}, ["month", "bills", "errors", "subtotal", "tax", "total", "next_offset"], strict=False)
_PRICE = {name: s("integer", minimum=0, maximum=100 if name == "tax_rate_percent"
                  else 10_000_000) for name in billing_repo.PRICE_FIELDS}
PRICES = obj(_PRICE, list(_PRICE), strict=False)
PRICES_SET = obj(_PRICE, minProperties=1)

CHECK_REPORT = obj({
    "ok": s("boolean"), "checked": s("integer"), "ignored": s("array", items=s("string")),
    "mismatches": s("array", items=obj({"endpoint": s("string"), "problem": s("string"),
                                        "detail": s("string")},
                                       ["endpoint", "problem", "detail"], strict=False)),
}, ["ok", "checked", "mismatches", "ignored"], strict=False)
