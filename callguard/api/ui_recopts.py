"""Issue #14 additions to the recordings page: what an encrypted recording's row shows
(a download of the age file and why it cannot be played here), and its paused intervals."""

from __future__ import annotations

from callguard.db.models import Recording


def encrypted_cell(rec: Recording) -> str | None:
    """The play/download cell of an encrypted, finished recording; None for any other."""
    if not rec.encrypted or rec.status == "recording":
        return None
    return (f'<a href="/ui/recordings/{rec.id}/audio?download=1" id="download-{rec.id}">'
            "download (encrypted, .wav.age)</a> "
            f'<span class="muted" id="encrypted-{rec.id}">Encrypted with your contract\'s '
            "public key: this server cannot decrypt or play it. Decrypt it with your private "
            "key, e.g. <code>age -d -i key.txt recording.wav.age &gt; recording.wav</code>; "
            "its sha256 is that of the encrypted file.</span>")


def paused_note(rec: Recording) -> str:
    """" (paused N×)" when the recording was paused (silence in the file for those times)."""
    n = len(rec.muted or [])
    return f' <span class="muted">(paused {n}×)</span>' if n else ""
