"""How a Decision is carried out: which cg-* context, with which channel variables.

Pure and shared by both shells, so the ARI app and the FastAGI fallback drive the dialplan
identically (REL-1). Every value set here comes from the site or the domain, never raw
caller input, because the dialplan expands them (README-SERIOUSLY.bestpractices).
"""

from __future__ import annotations

import re
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


def native_formats(native_format: str) -> list[str]:
    """CHANNEL(audionativeformat) / CHANNEL(videonativeformat) as format names, in Asterisk's
    preference order: "(ulaw|g722)" -> ["ulaw", "g722"]; empty or "(nothing)" -> []."""
    value = native_format.strip()
    if value.startswith("(") and value.endswith(")"):
        value = value[1:-1]
    names = [name.strip().lower() for name in value.split("|")]
    return [name for name in names if name and name != "nothing"]


def audio_format_present(native_format: str) -> bool:
    """CHANNEL(audionativeformat) of a call without an audio stream is empty or (nothing)."""
    return bool(native_formats(native_format))


# Asterisk's names of its 8 kHz (standard-quality) audio formats. Any other audio format
# (g722, siren7/14, slin16 and up, speex16/32, opus, ...) is wideband: source 004's 高音質電話.
NARROWBAND_FORMATS = frozenset({
    "ulaw", "alaw", "gsm", "g723", "g726", "g726aal2", "g729", "ilbc", "lpc10", "adpcm",
    "slin", "speex", "silk8", "codec2", "testlaw"})


def audio_is_wideband(native_format: str) -> bool:
    """Whether the call's audio is not standard quality. The first name is the format the
    call uses: pjsip.conf's `allow` order (ulaw first) wins for an offer with several
    (incoming_call_offer_pref = local), so a G.722 + G.711 offer is a G.711 call and only a
    G.722-only one is wideband. No audio is not wideband."""
    names = native_formats(native_format)
    return bool(names) and names[0] not in NARROWBAND_FORMATS


# ---- the ARI app's one-request hand-off (PERF-1) ---------------------------------------------
# The ARI app sends a decided channel on with ONE `POST /channels/{id}/continue`: the decision
# travels as the target itself. The extension is "v" + the context's fields, comma-separated;
# the context's `_v.` extension assigns them with ARRAY() and goes on to `s` (see
# extensions_callguard.conf). A recording file travels as its parts (contract code, stamp,
# direction); the dialplan rebuilds the path from them, ${UNIQUEID} and the global
# CG_REC_ROOT the app sets when it connects; a carrier dial string `PJSIP/<digits>@carrier`
# travels as `+<digits>`. A target that cannot travel this way (a value
# ARRAY() could split, or longer than an extension may be) goes the old way: the variables in
# one request, then `continue` to the context's `a` extension.
ARI_FIELDS: dict[str, tuple[str, ...]] = {
    "cg-connect": ("CG_DIAL", "CG_TIMEOUT", "CG_CID_NUM", "CG_FWD_DIAL", "CG_PRIVACY",
                   "CG_UNALLOC_PROMPT", "CG_ANNOUNCE", "CG_ANNOUNCE_DIR", "CG_FOLLOW",
                   "CG_REC_CODE", "CG_REC_STAMP", "CG_REC_DIR"),
    "cg-refuse": ("CG_PROMPT", "CG_CAUSE"),
    "cg-release-cause": ("CG_CAUSE",),
    "cg-reject": (),
    "cg-decline": (),
}
MAX_EXTENSION = 79  # AST_MAX_EXTENSION (80) less the terminating NUL: longer is cut off
_FIELD_SAFE = re.compile(r"[A-Za-z0-9_./@:+=&-]*")
_CARRIER_DIAL = re.compile(r"PJSIP/([0-9]+)@carrier")  # [cg-connect] `_v.`: "+<digits>"
_REC_PATH = re.compile(
    r"(?P<y>\d{4})/(?P<m>\d{2})/(?P<d>\d{2})/(?P<code>[A-Za-z0-9_-]+)/"
    r"(?P<stamp>\d{8}T\d{9}Z)_(?P<dir>in|out)_(?P<uid>[^/]+)\.wav")


def rec_file(root: str, code: str, stamp: str, direction: str, uniqueid: str) -> str:
    """What the dialplan builds from the parts (keep in step with [cg-connect] `_v.`)."""
    return (f"{root.rstrip('/')}/{stamp[0:4]}/{stamp[4:6]}/{stamp[6:8]}/{code}/"
            f"{stamp}_{direction}_{uniqueid}.wav")


def ari_extension(target: DialplanTarget, follow: str, channel_id: str,
                  recordings_root: str) -> str | None:
    """The continue extension carrying the whole target, or None (see above)."""
    names = ARI_FIELDS.get(target.context)
    if names is None:
        return None
    if not names:
        return "s"
    values = dict(target.variables)
    # A mono recording ("b", the dialplan's default, no post-processing) travels as its
    # parts; any other MixMonitor options (stereo, issue #14) go the two-request way.
    if values.pop("CG_REC_OPTS", "") not in ("", "b") or values.pop("CG_REC_POST", ""):
        return None
    if follow:
        values["CG_FOLLOW"] = follow
    rec = values.pop("CG_REC_FILE", "")
    if rec:
        root = recordings_root.rstrip("/") + "/"
        m = _REC_PATH.fullmatch(rec.removeprefix(root)) if rec.startswith(root) else None
        if m is None or m["uid"] != channel_id or rec != rec_file(
                recordings_root, m["code"], m["stamp"], m["dir"], channel_id):
            return None
        values.update(CG_REC_CODE=m["code"], CG_REC_STAMP=m["stamp"], CG_REC_DIR=m["dir"])
    if set(values) - set(names):
        return None
    for name in ("CG_DIAL", "CG_FWD_DIAL"):  # the carrier's dial string, shortened
        m = _CARRIER_DIAL.fullmatch(values.get(name, ""))
        if m:
            values[name] = "+" + m[1]
    fields = [values.get(name, "") for name in names]
    if not all(_FIELD_SAFE.fullmatch(v) for v in fields):
        return None
    extension = "v" + ",".join(fields)
    return extension if len(extension) <= MAX_EXTENSION else None


def read_ari_extension(context: str, extension: str, uniqueid: str, rec_root: str
                       ) -> dict[str, str]:
    """The channel variables the context's `_v.` extension sets (the dialplan's side, for
    tests): CG_REC_FILE rebuilt, the parts and CG_FOLLOW left out, empty values dropped."""
    if extension in ("s", "a"):
        return {}
    assert extension.startswith("v")
    values = dict(zip(ARI_FIELDS[context], extension[1:].split(","), strict=True))
    stamp = values.pop("CG_REC_STAMP", "")
    code, direction = values.pop("CG_REC_CODE", ""), values.pop("CG_REC_DIR", "")
    values.pop("CG_FOLLOW", None)
    for name in ("CG_DIAL", "CG_FWD_DIAL"):
        if values.get(name, "").startswith("+"):
            values[name] = f"PJSIP/{values[name][1:]}@carrier"
    if stamp:
        values["CG_REC_FILE"] = rec_file(rec_root, code, stamp, direction, uniqueid)
        values["CG_REC_OPTS"] = "b"  # [cg-connect]'s MixMonitor default for an empty value
    return {k: v for k, v in values.items() if v}


# ---- channel variables in as few assignments as ARRAY() allows (PERF-1, REL-1) ---------------
# ARRAY(A,B,...) = "a,b,..." assigns each name its field (a missing or empty field sets "",
# as a single assignment of "" does: funcs/func_strings.c). Names and values it takes
# verbatim: no separator, quote, escape, bracket or blank. Both shells assign this way: the
# ARI app in one `POST /channels/{id}/variable`, the fallback in one SET VARIABLE.
_ARRAY_SAFE = re.compile(r"[A-Za-z0-9_./@:+=-]*")
_ARRAY_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def grouped_assignments(values: dict[str, str]) -> list[tuple[str, str]]:
    """(name, value) pairs to assign, in order: one ARRAY() for every name and value it
    takes verbatim, then one pair for each of the rest (a value with a comma, quote, blank,
    ...; a function such as CHANNEL(hangup_handler_push))."""
    safe = {k: v for k, v in values.items()
            if _ARRAY_NAME.fullmatch(k) and _ARRAY_SAFE.fullmatch(v)}
    rest = [(k, v) for k, v in values.items() if k not in safe]
    if len(safe) < 2:
        return [*safe.items(), *rest]
    return [(f"ARRAY({','.join(safe)})", ",".join(safe.values())), *rest]
