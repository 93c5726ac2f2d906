"""Issue #15: the pages' language choice and texts, pure (no server)."""

from __future__ import annotations

import re
import string
from datetime import UTC, datetime

import pytest

from callguard.api import i18n
from callguard.api.overview import render

CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uff00-\uffef]")


@pytest.mark.parametrize(("switch", "remembered", "header", "want"), [
    (None, None, None, "ja"),  # Japanese first
    (None, None, "", "ja"),
    (None, None, "fr-FR,fr;q=0.9", "ja"),  # neither of ours: Japanese
    (None, None, "en-US,en;q=0.9", "en"),
    (None, None, "en-US,en;q=0.9,ja;q=0.8", "en"),
    (None, None, "en;q=0.5,ja-JP", "ja"),  # by q, not by order
    (None, None, "ja;q=0.5,en;q=0.5", "ja"),  # a tie: the first named
    (None, None, "en;q=0,ja;q=0.1", "ja"),  # q=0: not acceptable
    (None, None, "en;q=oops", "ja"),
    (None, "en", "ja", "en"),  # the remembered switch beats the header
    ("ja", "en", "en", "ja"),  # the switch beats both
    ("xx", None, "en", "en"),  # an unknown switch is ignored
    ("EN", None, None, "en"),
])
def test_negotiate(switch: str | None, remembered: str | None, header: str | None,
                   want: str) -> None:
    assert i18n.negotiate(switch, remembered, header) == want


@pytest.mark.parametrize(("typed", "stored"), [
    ("0399990000", "0399990000"),
    ("03-9999-0000", "0399990000"),
    ("０３－９９９９－００００", "0399990000"),  # full-width, as a Japanese IME types it
    ("(03) 9999 0000", "0399990000"),
    ("03‐9999‐0000", "0399990000"),
    ("非通知", "anonymous"),
    ("Anonymous", "anonymous"),
    ("2001", "2001"),  # an extension inside the contract
    ("  ", ""),
])
def test_remote_query(typed: str, stored: str) -> None:
    assert i18n.remote_query(typed) == stored


def _fields(text: str) -> set[str]:
    return {f for _, f, _, _ in string.Formatter().parse(text) if f}


def test_every_text_in_both_languages() -> None:
    for key, (ja, en) in i18n.TEXT.items():
        assert ja.strip() and en.strip(), key
        assert _fields(ja) == _fields(en), key  # the same facts in both
        if key != "switch":  # the switch names the other language in that language
            words = re.sub(r"\{[^}]*\}|callguard", "", ja)
            assert CJK.search(ja) or not re.search(r"[a-z]{3,}", words), key
            assert not CJK.search(en), key


def test_overview_render_in_each_language() -> None:
    rows: dict[str, list[object]] = {"hourly": [], "rejected": [], "fallback": [],
                                     "recordings": []}
    now = datetime(2026, 5, 1, 3, 0, tzinfo=UTC)
    ja = render("全契約", rows, now, "ja")
    en = render("All contracts", rows, now, "en")
    assert "時間帯別の通話結果" in ja and "接続" in ja
    assert "Calls by outcome per hour" in en and not CJK.search(en)
