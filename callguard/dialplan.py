"""How a Decision is carried out: which cg-* context, with which channel variables.

Pure and shared by both shells, so the ARI app and the FastAGI fallback drive the dialplan
identically (REL-1). Every value set here comes from the site or the domain, never raw
caller input, because the dialplan expands them (README-SERIOUSLY.bestpractices).
"""

from __future__ import annotations

from dataclasses import dataclass

from callguard.domain.recording_options import ANNOUNCEMENT, mixmonitor_variables
from callguard.domain.routing import Connect, Decision, NuisanceMenu, Refuse, Reject


@dataclass(frozen=True)
class DialplanTarget:
    context: str
    variables: dict[str, str]


def target_for(decision: Decision, recordings_root: str) -> DialplanTarget:
    """recordings_root: the recordings directory as Asterisk sees it."""
    if isinstance(decision, Connect):
        plan = decision.record
        rec = f"{recordings_root.rstrip('/')}/{plan.rel_path}" if plan else ""
        return DialplanTarget(
            "cg-connect",
            {
                "CG_DIAL": decision.dial,
                "CG_TIMEOUT": str(decision.timeout_s),
                "CG_CID_NUM": decision.caller_id or "",
                **mixmonitor_variables(rec, plan is not None and plan.stereo),
                "CG_FWD_DIAL": decision.forward_dial or "",
                "CG_PRIVACY": "1" if decision.withhold_id else "",
                "CG_UNALLOC_PROMPT": decision.unallocated_prompt or "",
                # Issue #14: inbound, the caller hears it before the phone rings (early media);
                # outbound, the called party hears it on answer, before the bridge (Dial A()).
                "CG_ANNOUNCE": ANNOUNCEMENT if plan is not None and plan.announce else "",
                "CG_ANNOUNCE_DIR": plan.direction if plan is not None and plan.announce else "",
            },
        )
    if isinstance(decision, Refuse):
        if decision.prompt is None:
            return DialplanTarget("cg-release-cause", {"CG_CAUSE": str(decision.cause)})
        return DialplanTarget(
            "cg-refuse", {"CG_PROMPT": decision.prompt, "CG_CAUSE": str(decision.cause)}
        )
    if isinstance(decision, Reject):
        return DialplanTarget("cg-reject" if decision.audio else "cg-decline", {})
    if isinstance(decision, NuisanceMenu):
        raise ValueError("the 144 menu is interactive: it is run by the shell, not the dialplan")
    raise TypeError(f"unknown decision {decision!r}")


def audio_format_present(native_format: str) -> bool:
    """CHANNEL(audionativeformat) of a call without an audio stream is empty or (nothing)."""
    value = native_format.strip()
    return bool(value) and value != "(nothing)"
