"""The astdb route map: what the dialplan reads when it may not ask the services (pure, no I/O).

Two families, written from the site snapshot:
- `callguard_route/<number>` = `<line number>@<endpoint>` (or `<endpoint>` for a line without a
  number of its own): `Dial(PJSIP/${CG_EP})` in the last-resort path when both the ARI app and
  the FastAGI fallback are down (REL-1), in `[cg-transfer-dial]` and in the bench baseline. The
  phone is called by its number, as routed calls are (`routing.endpoint_dial`).
- `callguard_cid/<endpoint>` = the line's own number: the caller ID of emergency calls (REL-6),
  of fail-open outbound calls and of transfers to the carrier.

A third family, `callguard_meta`, holds one key, `map_hash` = `map_hash(desired)`: written last
after the two families were made equal to a map, deleted before they are changed, so it names
the map astdb holds, or is missing. The writers compare it (one `database get`) instead of
reading the families whole (`database show` holds Asterisk's astdb lock while it writes every
row to the console: callguard.astdb_sync). The dialplan never reads it.

`desired_map` is the one place that knows the map's shape; `diff` turns it and what astdb holds
(`parse_show` of `database show <family>`) into the few puts and deletes that make them equal.
Used by `callguard site sync-asterisk` and by the services' `callguard.astdb_sync`.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from callguard.domain.routing import endpoint_dial
from callguard.domain.site import SiteSnapshot

ROUTE = "callguard_route"
CID = "callguard_cid"
FAMILIES = (ROUTE, CID)
META = "callguard_meta"  # not one of FAMILIES: never diffed, only its one key written
MAP_HASH = "map_hash"

AstdbMap = dict[str, dict[str, str]]  # family → key → value

# One word of an Asterisk CLI line: the CLI splits on blanks and reads quotes and backslashes,
# so a text with one of these could not be written as the one key or value it is. Numbers and
# endpoint names are validated on the way in (callguard.services.base): never a real one.
_NOT_IN_A_WORD = re.compile(r"[\s\"'\\]")


def _word(text: str) -> bool:
    return bool(text) and _NOT_IN_A_WORD.search(text) is None


def _words_only(family: dict[str, str]) -> dict[str, str]:
    """`family` without the entries whose key or value is no CLI word: all of them checked at
    once first (C speed: 10^5 numbers, PERF-3), one by one only if one is not."""
    if "" not in family and _NOT_IN_A_WORD.search("".join(family)) is None \
            and _NOT_IN_A_WORD.search("".join(family.values())) is None \
            and "" not in family.values():
        return family
    return {k: v for k, v in family.items() if _word(k) and _word(v)}


def desired_map(site: SiteSnapshot) -> AstdbMap:
    """What astdb must hold for `site`: every family of FAMILIES, even when empty (an empty
    family is one whose stale keys must go). ~0.15 s for 10^5 numbers and lines."""
    # `<line number>@<endpoint>` (or `<endpoint>`): the dial string the routed calls use.
    target = {name: endpoint_dial(site, name).removeprefix("PJSIP/") for name in site.endpoints}
    route = {number: target.get(info.endpoint, info.endpoint)
             for number, info in site.numbers.items()}
    cid = {name: ep.own_number for name, ep in site.endpoints.items() if ep.own_number}
    return {ROUTE: _words_only(route), CID: _words_only(cid)}


def map_hash(amap: AstdbMap) -> str:
    """A stable digest of `amap` (the first 16 hex digits of a SHA-256 over its sorted
    families, keys and values): the same map always gives the same marker, in any process.
    Keys and values are CLI words (no blank, no NUL), so the separators are unambiguous."""
    h = hashlib.sha256()
    for family in sorted(amap):
        h.update(f"[{family}]\n".encode())
        entries = amap[family]
        h.update("".join(f"{k}\0{entries[k]}\n" for k in sorted(entries)).encode())
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class Put:
    family: str
    key: str
    value: str

    @property
    def command(self) -> str:
        return f"database put {self.family} {self.key} {self.value}"


@dataclass(frozen=True)
class Delete:
    family: str
    key: str

    @property
    def command(self) -> str:
        return f"database del {self.family} {self.key}"


@dataclass(frozen=True)
class Changes:
    puts: tuple[Put, ...] = ()
    deletes: tuple[Delete, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.puts or self.deletes)

    def commands(self) -> list[str]:
        """Puts first: a number that moved is overwritten in place, never missing meanwhile."""
        return [p.command for p in self.puts] + [d.command for d in self.deletes]


def diff(desired: AstdbMap, current: AstdbMap) -> Changes:
    """The puts and deletes that turn `current` into `desired`, family by family of `desired`
    (a family it does not name is not ours and left alone). Sorted, so the same maps always
    give the same commands."""
    puts: list[Put] = []
    deletes: list[Delete] = []
    for family in sorted(desired):
        want, have = desired[family], current.get(family, {})
        puts.extend(Put(family, k, v) for k, v in sorted(
            (k, v) for k, v in want.items() if have.get(k) != v))
        # A key that cannot be sent as one CLI word is not one we wrote: left alone.
        deletes.extend(Delete(family, k) for k in sorted(have.keys() - want.keys()) if _word(k))
    return Changes(tuple(puts), tuple(deletes))


class UnreadableOutput(ValueError):
    """Asterisk's answer is not the output of the command asked (not loaded, an error, cut
    short): nothing may be concluded from it, least of all that astdb is empty."""


def show_command(family: str) -> str:
    return f"database show {family}"


_RESULTS = re.compile(r"^(\d+) results? found\.\s*$")


def parse_show(output: str, family: str) -> dict[str, str]:
    """`database show <family>` → {key: value}. Each entry is `/<family>/<key>`, padded to 50
    columns, then `: ` and the value padded to 25 (main/db.c), and the last line counts them.
    Lines that are neither (a log line the console interleaves) are skipped; without the count
    line, or with another count than the entries read, the output is unreadable."""
    prefix = f"/{family}/"
    found: dict[str, str] = {}
    entries = 0
    counted: int | None = None
    for line in output.splitlines():
        if line.startswith(prefix):
            key, sep, value = line[len(prefix):].partition(": ")
            if not sep:  # an empty value: `key<padding>:` once the padding is stripped
                key, sep, value = line[len(prefix):].rstrip().partition(":")
            if not sep:
                raise UnreadableOutput(f"unexpected `{show_command(family)}` line: {line[:80]!r}")
            found[key.rstrip()] = value.strip()
            entries += 1
        elif (m := _RESULTS.match(line.strip())) is not None:
            counted = int(m.group(1))
    if counted is None:
        raise UnreadableOutput(
            f"no `results found` line in `{show_command(family)}`: {output.strip()[:120]!r}")
    if counted != entries:
        raise UnreadableOutput(f"`{show_command(family)}` counted {counted} entries, "
                               f"listed {entries}")
    return found


def get_command(family: str, key: str) -> str:
    return f"database get {family} {key}"


def parse_get(output: str) -> str | None:
    """`database get <family> <key>` → the value, None when there is no such entry."""
    for line in output.splitlines():
        if line.startswith("Value: "):
            return line[len("Value: "):].strip()
        if line.strip() == "Database entry not found.":
            return None
    raise UnreadableOutput(f"unexpected `database get` output: {output.strip()[:120]!r}")


def put_failed(output: str) -> bool:
    """`database put` answers `Updated database successfully` or `Failed to update entry`."""
    return "Updated database successfully" not in output
