"""The services' JSON log lines (ari_app.logs): one object per line, the call's channel on it,
and the extras a call site adds; nothing collected that the line does not hold (PERF-1)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

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


def test_with_a_log_file_the_lines_go_there_and_rotate(
        restored: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The supervisor names the file (CALLGUARD_LOG_FILE): the service writes it itself, no
    pipe to another process in between; it rotates at its size like supervisord did."""
    path = tmp_path / "ari.log"
    monkeypatch.setenv(logs.LOG_FILE_ENV, str(path))
    monkeypatch.setattr(logs, "LOG_FILE_MAX_BYTES", 400)
    logs.setup_logging()
    for n in range(8):
        logging.getLogger("callguard.calls").info("inbound decision %d", n)
    for handler in logging.getLogger().handlers:
        handler.close()
    assert capsys.readouterr().out == ""
    files = sorted(tmp_path.iterdir())
    assert [f.name for f in files][:2] == ["ari.log", "ari.log.1"]
    lines = [orjson.loads(line) for f in reversed(files) for line in f.read_text().splitlines()]
    assert [line["msg"] for line in lines][-1] == "inbound decision 7"
    assert all(f.stat().st_size <= 400 for f in files)


def test_a_log_file_that_cannot_be_opened_falls_back_to_stdout(
        restored: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(logs.LOG_FILE_ENV, str(tmp_path / "missing" / "ari.log"))
    logs.setup_logging()
    logging.getLogger("callguard.app").info("started")
    first, second = (orjson.loads(line) for line in capsys.readouterr().out.splitlines())
    assert first["level"] == "warning" and "log file refused" in first["msg"]
    assert "missing/ari.log" in first["msg"] and second["msg"] == "started"
