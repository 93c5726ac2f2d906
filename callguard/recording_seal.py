"""Encryption at rest (issue #14): a contract that registered an age (X25519) public key has
its closed recordings rewritten as age ciphertext (`<file>.wav.age`), with the plaintext
removed. The server holds only the public key, so it cannot decrypt them; the row's sha256
and bytes are then those of the ciphertext, and `encrypted` says so.

Run by the API process's background worker (callguard.recording_worker) every few seconds,
so no shell on the call path waits for it; rows still `recording` are never touched.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import pyrage
from pyrage import x25519
from sqlalchemy import select
from sqlalchemy.orm import Session

from callguard.db.models import Recording, RecordingOptions

log = logging.getLogger("callguard.recordings")
SUFFIX = ".age"
BATCH = 50  # rows per sweep; the rest wait for the next one


@dataclass
class SealReport:
    sealed: int = 0
    errors: int = 0
    plaintexts: list[Path] = field(default_factory=list)  # removed once the rows committed

    def remove_plaintexts(self) -> None:
        """After the commit: until then the rows still name these files."""
        for path in self.plaintexts:
            try:
                path.unlink(missing_ok=True)
            except OSError as exc:
                log.error("cannot remove the plaintext %s: %s", path, exc)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def seal_file(path: Path, public_key: str) -> Path:
    """Encrypt `path` to `path.age` (written aside, then renamed); the plaintext stays."""
    out = path.with_name(path.name + SUFFIX)
    tmp = path.with_name(path.name + SUFFIX + ".tmp")
    pyrage.encrypt_file(str(path), str(tmp), [x25519.Recipient.from_str(public_key)])
    with tmp.open("rb") as f:
        os.fsync(f.fileno())
    os.chmod(tmp, path.stat().st_mode & 0o777)
    os.replace(tmp, out)
    return out


def seal_pending(session: Session, recordings_dir: Path) -> SealReport:
    """Encrypt every finished clear recording of a contract with a public key. The caller
    commits, then calls report.remove_plaintexts()."""
    report = SealReport()
    rows = session.execute(
        select(Recording, RecordingOptions.public_key)
        .join(RecordingOptions, RecordingOptions.contract_id == Recording.contract_id)
        .where(RecordingOptions.public_key.is_not(None), Recording.encrypted.is_(False),
               Recording.status != "recording")
        .order_by(Recording.id).limit(BATCH).with_for_update(of=Recording, skip_locked=True)
    ).all()
    for row, key in rows:
        path = recordings_dir / row.path
        if key is None or not path.exists():
            continue  # a failed row without a file: nothing to protect
        try:
            sealed = seal_file(path, key)
        except (OSError, pyrage.EncryptError, pyrage.RecipientError) as exc:
            report.errors += 1
            log.error("cannot encrypt recording %s: %s", row.id, exc)
            continue
        row.path = str(sealed.relative_to(recordings_dir))
        row.sha256 = _sha256(sealed)
        row.bytes = sealed.stat().st_size
        row.encrypted = True
        report.plaintexts.append(path)
        report.sealed += 1
        log.info("recording %s encrypted to the contract's public key (%d bytes)", row.id,
                 row.bytes)
    return report
