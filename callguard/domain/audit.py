"""Who did it (BILL audit, ADM-1/2): the actor written next to a change, as text. Pure.

- The CLI is `cli:<OS user name>`; a user name the system cannot give is `cli:uid-<uid>`,
  else `cli:unknown` (a change is never refused for want of a name).
- The API is the bearer token as the API knows it: `api:<role>:token-<id>` (`token-file`: the
  generated operator token of .run/secrets/api.token, which has no row), then the token's
  label in parentheses when it has one. Never the token itself (only its sha256 is stored).
- Control characters become `?` and the text is cut at `MAX_ACTOR` characters: it is shown
  in a terminal and kept in a bounded column (migration price_history_audit's check).
"""

from __future__ import annotations

import unicodedata

MAX_ACTOR = 200  # price_history.changed_by's check


def clean_actor(text: str) -> str:
    """`text` made safe to store and print; ValueError when nothing is left."""
    shown = "".join("?" if unicodedata.category(ch).startswith("C") else ch
                    for ch in text.strip())
    if not shown:
        raise ValueError("an actor needs a name")
    return shown[:MAX_ACTOR]


def cli_actor(user: str | None, uid: int | None = None) -> str:
    """The CLI's actor: the OS user name, else the uid, else unknown."""
    if user is not None and user.strip():
        return clean_actor(f"cli:{user.strip()}")
    return f"cli:uid-{uid}" if uid is not None else "cli:unknown"


def api_actor(role: str, token_id: int | None, label: str = "") -> str:
    """The API's actor: the token's role and id (and label), never its secret."""
    who = f"api:{role}:token-{'file' if token_id is None else token_id}"
    label = label.strip()
    return clean_actor(f"{who} ({label})" if label else who)
