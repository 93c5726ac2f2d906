"""SEC-4: Resource-Priority and P-Visited-Network-ID are carrier headers. From customer
equipment they are ignored: a handset cannot skip the recording limit's congestion refusal or
its recording by adding them; its priority is its line on the priority list, its roaming the
endpoint's flag in the database."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from callguard.config import Settings
from tests.e2e.rec_helpers import (
    CLI,
    F1A,
    M1A,
    capacity_restored,
    outbound,
    recordings,
    wait_site_refresh,
    wav_files,
)


@pytest.fixture
def no_recording_capacity(clean: Engine) -> Iterator[None]:
    with capacity_restored(clean):
        subprocess.run([CLI, "recordings", "capacity", "--max", "0", "--policy",
                        "congestion"], check=True, capture_output=True)
        wait_site_refresh()
        yield


def test_handset_resource_priority_does_not_skip_the_limit(
        no_recording_capacity: None, clean: Engine, settings: Settings, work: Path) -> None:
    """At the recording maximum (0) a handset's prefixed call carrying Resource-Priority is
    refused with congestion like any other, never let through unrecorded."""
    call, carrier = outbound(work, F1A, "0077270612345678",
                             extra=["Resource-Priority: ets.0"], seconds=1)
    assert call.final_status() == 503 and 183 in call.statuses()
    assert not [m for m in carrier.result().messages if m.method == "INVITE"]
    assert recordings(clean, wait_s=1) == [] and wav_files(settings) == []


def test_handset_visited_network_header_does_not_skip_recording(
        clean: Engine, settings: Settings, work: Path) -> None:
    """REC-OUT-4 is decided from the endpoint's roaming flag: a handset at home adding
    P-Visited-Network-ID is still recorded."""
    call, _ = outbound(work, M1A, "0077260612345678",
                       extra=['P-Visited-Network-ID: "Visited network"'], seconds=1)
    assert call.final_status() == 200
    [row] = recordings(clean)
    assert (row["direction"], row["remote"]) == ("out", "0612345678")
