"""Structured JSON logs; every line inside a call carries its channel id (contextvar)."""

from __future__ import annotations

import contextvars
import logging
import os
import sys
from datetime import UTC, datetime
from logging.handlers import RotatingFileHandler

import orjson

LOG_FILE_ENV = "CALLGUARD_LOG_FILE"  # set by the supervisor for the call-path services
LOG_FILE_MAX_BYTES = 20 * 1024 * 1024
LOG_FILE_BACKUPS = 5

channel_var: contextvars.ContextVar[str] = contextvars.ContextVar("channel", default="-")

_STD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "channel": channel_var.get(),
            "msg": record.getMessage(),
        }
        out.update({k: v for k, v in record.__dict__.items() if k not in _STD})
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


class CountingFileHandler(RotatingFileHandler):
    """Rotates at maxBytes like RotatingFileHandler, by counting what it wrote.

    The stdlib's shouldRollover (3.11) formats every record a second time, stats the file
    twice and seeks it, per line: on the call path, a JSON encoding and three syscalls a line
    for a size this process knows already, as the file's only writer (PERF-1).
    """

    def __init__(self, filename: str, maxBytes: int, backupCount: int) -> None:
        super().__init__(filename, maxBytes=maxBytes, backupCount=backupCount, encoding="utf-8")
        self._written = os.stat(self.baseFilename).st_size  # appending to what is there

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + self.terminator
            size = len(line) if line.isascii() else len(line.encode("utf-8"))
            if self._written and self._written + size > self.maxBytes:
                # bpo-45401: never rename what is not a regular file (a FIFO, /dev/null).
                if os.path.isfile(self.baseFilename):
                    self.doRollover()
                self._written = 0
            stream = self.stream
            if stream is None:  # closed, then logged to again
                stream = self.stream = self._open()
            stream.write(line)
            stream.flush()
            self._written += size
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)


def setup_logging(level: int = logging.INFO) -> None:
    # The JSON line holds none of the caller's file/line, thread or process: do not collect
    # them for every record (findCaller walks the stack). A line or two per call, on the call
    # path: logging was 9 % of the ARI app's CPU at 75 calls/s (py-spy, PERF-1).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    # The call-path services write their own file (CALLGUARD_LOG_FILE) rather than a pipe to
    # supervisord: supervisord spent ~0.23 ms of the stack's CPU per line relaying them, and,
    # at normal priority beside a real-time Asterisk and app, it could be starved until the
    # pipe filled and the app's next log line blocked its event loop (PERF-1). A file write
    # never waits for another process. Without the variable (a shell, a test): stdout.
    path = os.environ.get(LOG_FILE_ENV)
    refused = ""
    handler: logging.Handler = logging.StreamHandler(sys.stdout)
    if path:
        try:
            handler = CountingFileHandler(path, maxBytes=LOG_FILE_MAX_BYTES,
                                          backupCount=LOG_FILE_BACKUPS)
        except OSError as exc:  # logging on stdout beats not running at all
            refused = f"{path}: {exc}"
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    if refused:
        logging.getLogger("callguard.logs").warning("log file refused, logging to stdout: %s",
                                                    refused)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
