"""Issue #14 additions to the recordings page: what an encrypted recording's row shows
(a download of the age file and why it cannot be played here), and its paused intervals;
in the page's language (issue #15)."""

from __future__ import annotations

import html

from callguard.api.i18n import DEFAULT, Lang, t
from callguard.db.models import Recording

AGE_CMD = "<code>age -d -i key.txt recording.wav.age &gt; recording.wav</code>"


def encrypted_cell(rec: Recording, lang: Lang = DEFAULT, call: str = "") -> str | None:
    """The play/download cell of an encrypted, finished recording; None for any other."""
    if not rec.encrypted or rec.status == "recording":
        return None
    label = html.escape(t(lang, "enc_download_of", call=call or str(rec.id)), quote=True)
    return (f'<a href="/ui/recordings/{rec.id}/audio?download=1" id="download-{rec.id}" '
            f'aria-label="{label}">{t(lang, "enc_download")}</a> '
            f'<span class="muted" id="encrypted-{rec.id}">'
            f'{t(lang, "enc_note", cmd=AGE_CMD)}</span>')


def paused_note(rec: Recording, lang: Lang = DEFAULT) -> str:
    """" (paused N×)" when the recording was paused (silence in the file for those times)."""
    n = len(rec.muted or [])
    return f' <span class="muted">{t(lang, "paused", n=n)}</span>' if n else ""
