"""A stand-in for a phone that died: it holds the phone's SIP address and answers the BYE that
Asterisk sends when it releases the dead phone's call, and the INVITE Asterisk still
retransmits to a phone that never answered (with a 480, which ends that transaction).

Without it that BYE goes unanswered and Asterisk retransmits it for up to 32 s (timer F); a
phone started on the same address in that time (the next test's) takes it as its own call and
aborts (CI of e3b2082: test_file_modes after test_failsafe's SIGKILLed phone on 127.0.1.2).
It also lets a test assert that Asterisk did hang up the dead leg with a BYE. The same holds
for an INVITE nobody answered (timer B, 32 s): a phone started on that address in that time
took its retransmission for a call and "rang" (test_backbone's unreachable phone, then
test_local_state's rejected caller on the same address).
"""

from __future__ import annotations

import socket
import threading
from types import TracebackType

# Headers a response copies from its request (RFC 3261 §8.2.6.2), long and compact forms.
_COPIED = ("via:", "v:", "from:", "f:", "to:", "t:", "call-id:", "i:", "cseq:")


def ok_for(request: str) -> str | None:
    """The 200 OK answering a BYE, the 480 answering an INVITE (the To gets a tag, as a final
    response's must), or None for anything else (left unanswered)."""
    head = request.split("\r\n\r\n", 1)[0].split("\r\n")
    if not head or not head[0].startswith(("BYE ", "INVITE ")):
        return None
    copied = [line for line in head[1:] if line.lower().startswith(_COPIED)]
    if head[0].startswith("BYE "):
        return "\r\n".join(["SIP/2.0 200 OK", *copied, "Content-Length: 0", "", ""])
    tagged = [f"{line};tag=catcher" if line.lower().startswith(("to:", "t:"))
              and ";tag=" not in line else line for line in copied]
    return "\r\n".join(["SIP/2.0 480 Temporarily Unavailable", *tagged, "Content-Length: 0",
                         "", ""])


class ByeCatcher:
    """Binds ip:port (UDP) and answers every BYE with a 200 OK and every INVITE with a 480
    until closed; `byes` and `invites` hold the Call-ID line of each one received
    (retransmissions included)."""

    def __init__(self, ip: str, port: int = 5060) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((ip, port))
        self.sock.settimeout(0.2)
        self.byes: list[str] = []
        self.invites: list[str] = []  # INVITEs answered with 480 (retransmissions included)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            text = data.decode("utf-8", "replace")
            answer = ok_for(text)
            if answer is None:
                continue
            call_id = next((line for line in text.split("\r\n")
                            if line.lower().startswith(("call-id:", "i:"))), "")
            (self.byes if text.startswith("BYE ") else self.invites).append(call_id)
            self.sock.sendto(answer.encode(), peer)

    def __enter__(self) -> ByeCatcher:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()
