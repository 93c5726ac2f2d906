"""The services' JSON log lines (ari_app.logs): one object per line, the call's channel on it,
and the extras a call site adds; nothing collected that the line does not hold (PERF-1)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import orjson
import pytest

from ari_app import logs


@pytest.fixture
def restored() -> Iterator[None]:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, logging._srcfile, logging.logThreads,
             logging.logProcesses, logging.logMultiprocessing)
    try:
        yield
    finally:
        (root.handlers[:], level, logging._srcfile, logging.logThreads,
         logging.logProcesses, logging.logMultiprocessing) = saved
        root.setLevel(level)


def test_a_line_is_one_json_object_with_channel_and_extras(
        restored: None, capsys: pytest.CaptureFixture[str]) -> None:
    logs.setup_logging()
    token = logs.channel_var.set("1796301627.2310")
    try:
        logging.getLogger("callguard.calls").info("inbound decision",
                                                  extra={"action": "reject", "listed": True})
    finally:
        logs.channel_var.reset(token)
    [line] = capsys.readouterr().out.splitlines()
    out = orjson.loads(line)
    assert {k: out[k] for k in ("level", "logger", "channel", "msg", "action", "listed")} == {
        "level": "info", "logger": "callguard.calls", "channel": "1796301627.2310",
        "msg": "inbound decision", "action": "reject", "listed": True}
    assert out["ts"].endswith("+00:00")
    # The caller's file and line, thread and process are not collected per record.
    assert not {"pathname", "lineno", "thread", "process"} & out.keys()
    record = logging.LogRecord("x", logging.INFO, "", 0, "m", (), None)
    assert record.thread is None and record.process is None


def test_an_exception_is_kept_on_its_line(restored: None,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    logs.setup_logging()
    try:
        raise ValueError("odd caller id")
    except ValueError:
        logging.getLogger("callguard.app").exception("decision failed")
    out = orjson.loads(capsys.readouterr().out)
    assert out["level"] == "error" and out["channel"] == "-"
    assert "ValueError: odd caller id" in out["exc"]
