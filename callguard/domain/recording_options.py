"""Per-contract recording options (issue #14), pure: what a contract chose, and how a
RecordPlan's options become the MixMonitor arguments of [cg-connect].

Stereo uses MixMonitor's `D` option (Asterisk 22 app_mixmonitor: "interleave the audio coming
from the channel and the audio going to the channel and output it as a 2 channel (stereo) raw
stream ... You must use the .raw file extension"). So a stereo call is written as
`<base>.rec.raw`; MixMonitor's post-process command renames it to `<base>.raw` once the file is
closed, and the shell finishing the call wraps it into the row's `<base>.wav`
(callguard.recording_files). Channel 1 = audio from the MixMonitor'd channel (the caller's leg
in [cg-connect]), channel 2 = audio sent to it (the called party).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ANNOUNCEMENT = "rec_notice"  # sounds/ja/callguard/rec_notice (「この通話は録音されています。」)
# An age X25519 recipient: "age1" + bech32 data (58 chars). Checked again by pyrage on set.
_AGE_RECIPIENT = re.compile(r"age1[02-9ac-hj-np-z]{58}")


class InvalidOption(ValueError):
    pass


@dataclass(frozen=True)
class RecordingOptions:
    stereo: bool = False
    announce_in: bool = False  # the caller of an inbound call hears the announcement
    announce_out: bool = False  # the called party of an outbound call hears it
    public_key: str | None = None  # age recipient; recordings are encrypted to it once closed
    pause_code: str | None = None  # DTMF from the customer's side, e.g. "*1" (None: off)
    resume_code: str | None = None

    def announce(self, direction: str) -> bool:
        return self.announce_in if direction == "in" else self.announce_out


def check_public_key(value: str) -> str:
    """The key as stored, or InvalidOption with a reason a person can act on."""
    key = value.strip()
    if not _AGE_RECIPIENT.fullmatch(key):
        raise InvalidOption("public key must be an age X25519 recipient (age1... , 62 chars)")
    return key


_CODE = re.compile(r"[0-9*#]{1,4}")


def check_codes(pause: str | None, resume: str | None) -> tuple[str | None, str | None]:
    """Both codes or neither; 1-4 of 0-9 * #; different, neither a suffix of the other (the
    matcher looks at the last digits pressed)."""
    if (pause is None) != (resume is None):
        raise InvalidOption("set both the pause and the resume code, or neither")
    if pause is None or resume is None:
        return None, None
    for code in (pause, resume):
        if not _CODE.fullmatch(code):
            raise InvalidOption(f"DTMF code {code!r}: 1 to 4 of 0-9 * #")
    if pause.endswith(resume) or resume.endswith(pause):
        raise InvalidOption("the pause and resume codes must differ (neither ending the other)")
    return pause, resume


def raw_paths(wav_path: str) -> tuple[str, str]:
    """(file MixMonitor writes, name it gets once closed) for a stereo recording."""
    base = wav_path[:-4] if wav_path.endswith(".wav") else wav_path
    return f"{base}.rec.raw", f"{base}.raw"


def mixmonitor_variables(wav_path: str, stereo: bool) -> dict[str, str]:
    """CG_REC_FILE / CG_REC_OPTS / CG_REC_POST for [cg-connect]. The paths hold no caller
    text (REC-FILE-1), so the post-process command carries nothing a caller controls."""
    if not wav_path:
        return {"CG_REC_FILE": "", "CG_REC_OPTS": "", "CG_REC_POST": ""}
    if not stereo:
        return {"CG_REC_FILE": wav_path, "CG_REC_OPTS": "b", "CG_REC_POST": ""}
    writing, closed = raw_paths(wav_path)
    return {"CG_REC_FILE": writing, "CG_REC_OPTS": "bD",
            "CG_REC_POST": f"/bin/mv -f {writing} {closed}"}
