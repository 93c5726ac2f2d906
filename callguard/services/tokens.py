"""API tokens (ADM-2, SEC-2): only their sha256 is stored."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from callguard.db.models import ApiToken, Contract
from callguard.services import base as b

MAX_LABEL = 100  # api_tokens.label
TOKEN_PREFIX = "cgt_"  # noqa: S105 - a marker, not a credential


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_json(row: ApiToken, code: str | None) -> dict[str, Any]:
    return {"id": row.id, "contract": code, "label": row.label,
            "created_at": b.iso(row.created_at)}


def create_token(session: Session, contract: str | None, label: str = "") -> tuple[ApiToken, str]:
    """A new random token; only its sha256 is stored, so it is shown once, here."""
    b.text(label, "label", MAX_LABEL)
    contract_id = b.get_contract(session, contract).id if contract is not None else None
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(token_sha256=token_hash(token), contract_id=contract_id, label=label,
                   role="operator" if contract_id is None else "contract")
    session.add(row)
    session.flush()
    return row, token


def list_tokens(session: Session, contract: str | None = None, limit: int | None = None,
                offset: int = 0) -> b.Page:
    stmt = select(ApiToken, Contract.code).outerjoin(Contract,
                                                     Contract.id == ApiToken.contract_id)
    if contract is not None:
        stmt = stmt.where(Contract.code == b.get_contract(session, contract).code)
    rows = b.page_of(session, stmt.order_by(ApiToken.id), limit, offset)
    return b.make_page(rows, limit, offset, lambda r: token_json(r[0], r[1]))


def revoke_token(session: Session, token_id: int) -> None:
    row = session.get(ApiToken, token_id)
    if row is None:
        raise b.NotFound(f"no token {token_id}")
    session.delete(row)
    session.flush()


def resolve_token(session: Session,
                  token: str) -> tuple[int, int | None, str | None, str, str] | None:
    """(token id, contract id, contract code, role, label) of a stored token; None when
    unknown. The label names the token in audits (who changed a price), never the token."""
    row = session.execute(
        select(ApiToken.id, ApiToken.contract_id, Contract.code, ApiToken.role, ApiToken.label)
        .outerjoin(Contract, Contract.id == ApiToken.contract_id)
        .where(ApiToken.token_sha256 == token_hash(token))).first()
    return None if row is None else (row[0], row[1], row[2], row[3], row[4] or "")
