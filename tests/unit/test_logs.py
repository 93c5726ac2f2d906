"""The services' JSON log lines (ari_app.logs): one object per line, the call's channel on it,
and the extras a call site adds; nothing collected that the line does not hold (PERF-1)."""

from __future__ import annotations

import logging
import os
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


def test_the_file_handler_counts_instead_of_asking_the_file(
        restored: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """PERF-1: one format and one write per line; the size is counted (UTF-8 bytes, Japanese
    text included) and picks up where an existing file left off."""
    path = tmp_path / "ari.log"
    path.write_bytes(b"x" * 300 + b"\n")
    monkeypatch.setenv(logs.LOG_FILE_ENV, str(path))
    monkeypatch.setattr(logs, "LOG_FILE_MAX_BYTES", 1000)
    logs.setup_logging()
    [handler] = logging.getLogger().handlers
    assert isinstance(handler, logs.CountingFileHandler)
    formatted = 0
    real_format = handler.format

    def counting_format(record: logging.LogRecord) -> str:
        nonlocal formatted
        formatted += 1
        return real_format(record)

    monkeypatch.setattr(handler, "format", counting_format)
    for n in range(12):
        logging.getLogger("callguard.menu").info("この電話はお受けできません %d", n)
    handler.close()
    assert formatted == 12
    files = sorted(tmp_path.iterdir())
    assert len(files) >= 2 and all(f.stat().st_size <= 1000 for f in files)
    msgs = [orjson.loads(line)["msg"] for f in reversed(files)
            for line in f.read_text(encoding="utf-8").splitlines() if line.startswith("{")]
    assert msgs == [f"この電話はお受けできません {n}" for n in range(12)]
    assert files[-1].read_bytes().startswith(b"x" * 300)  # the oldest: what was there


def test_a_log_file_that_is_no_regular_file_is_never_renamed(
        restored: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fifo = tmp_path / "ari.fifo"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        monkeypatch.setenv(logs.LOG_FILE_ENV, str(fifo))
        monkeypatch.setattr(logs, "LOG_FILE_MAX_BYTES", 200)
        logs.setup_logging()
        for n in range(6):
            logging.getLogger("callguard.calls").info("line %d", n)
            os.read(reader, 65536)
        for handler in logging.getLogger().handlers:
            handler.close()
    finally:
        os.close(reader)
    assert sorted(f.name for f in tmp_path.iterdir()) == ["ari.fifo"]
