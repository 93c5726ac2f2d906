"""Blocking ARI reads for the CLI and the API's worker threads (ADM-1, REC-FILE-2), and the
two writes they need: a module reload (AMI switched on for a recording pause, callguard.ami)
and a whispering snoop channel (the tone confirming a DTMF pause, callguard.recording_pause).

One convention: the JSON body; None when Asterisk answers 404 (no such thing);
`AsteriskUnavailable` when it cannot be asked (down, wrong credentials, not JSON)."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from callguard.config import Settings


class AsteriskUnavailable(Exception):
    """ARI did not answer (down, wrong credentials): nothing could be decided."""


class AriReader:
    """Blocking ARI GETs on the loopback URL of the settings."""

    def __init__(self, settings: Settings, timeout_s: float = 5.0) -> None:
        self.base = f"{settings.ari_url}/ari"
        auth = f"{settings.ari_user}:{settings.ari_password}".encode()
        self.headers = {"Authorization": "Basic " + base64.b64encode(auth).decode()}
        self.timeout_s = timeout_s

    def get(self, path: str) -> Any | None:
        """The JSON body; None on 404; AsteriskUnavailable on anything else."""
        return self._call("GET", path)

    def reload_module(self, module: str) -> None:
        """`PUT /asterisk/modules/{module}`; AsteriskUnavailable if not done (404 included)."""
        if self._call("PUT", f"asterisk/modules/{urllib.parse.quote(module, safe='')}",
                      no_content=True) is None:
            raise AsteriskUnavailable(f"ARI: no module {module} to reload")

    def snoop(self, channel_id: str, app: str, app_args: str, whisper: str = "out",
              spy: str = "none") -> str | None:
        """`POST /channels/{id}/snoop`: a snoop channel entering Stasis app `app` with
        `app_args`; its id, or None when the channel is gone (404)."""
        query = urllib.parse.urlencode({"spy": spy, "whisper": whisper, "app": app,
                                        "appArgs": app_args})
        body = self._call("POST", f"channels/{urllib.parse.quote(channel_id, safe='')}/snoop"
                          f"?{query}")
        if body is None:
            return None
        if not isinstance(body, dict) or "id" not in body:
            raise AsteriskUnavailable("ARI snoop answered no channel")
        return str(body["id"])

    def app_registered(self, app: str) -> bool:
        """Whether Stasis app `app` is registered (its websocket connected)."""
        return self.get(f"applications/{urllib.parse.quote(app, safe='')}") is not None

    def _call(self, method: str, path: str, no_content: bool = False) -> Any | None:
        req = urllib.request.Request(f"{self.base}/{path}",  # noqa: S310 - URL from settings
                                     headers=self.headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:  # noqa: S310
                return True if no_content else json.load(resp)
        except urllib.error.HTTPError as exc:
            exc.close()  # its response (and socket) goes now, not at garbage collection
            if exc.code == 404:
                return None
            raise AsteriskUnavailable(f"ARI {path}: HTTP {exc.code}") from exc
        except (OSError, ValueError) as exc:
            raise AsteriskUnavailable(f"ARI at {self.base} does not answer: {exc}") from exc

    def config(self, kind: str, name: str) -> dict[str, str] | None:
        """A res_pjsip object's attributes (dynamic configuration); None if unknown."""
        body = self.get(f"asterisk/config/dynamic/res_pjsip/{kind}/"
                        f"{urllib.parse.quote(name, safe='')}")
        if body is None:
            return None
        return {t["attribute"]: t["value"] for t in body}

    def channel_exists(self, channel_id: str) -> bool:
        """Whether a channel (by unique id) still exists; AsteriskUnavailable if unknown."""
        return self.get(f"channels/{urllib.parse.quote(channel_id, safe='')}") is not None

    def info(self) -> dict[str, Any]:
        """`GET /asterisk/info` (version, build, status)."""
        body = self.get("asterisk/info")
        if not isinstance(body, dict):
            raise AsteriskUnavailable("ARI asterisk/info answered no object")
        return body
