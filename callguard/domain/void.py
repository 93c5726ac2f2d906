"""Voiding a subscription period entered by mistake (BILL, ADM-1/2): which period goes, what
the subscription goes back to, and when it is refused. Pure: periods and today in.

A period that should never have existed is not billed: it goes from `subscription_periods`
with the unit changes made inside it (their construction fees), and the subscription row
(what the call path reads) goes back to the period before it, or away when there is none.

- Only a service's latest period can be voided (the one its subscription row holds): an
  earlier one has a later one after it, entered knowing it; void that first.
- A period active in a month before today's was in a bill that may have been sent, the rule
  `billing prices` keeps (SPEC §5): refused unless forced (`force_past`), as prices are.
- The period before it ended on or before the voided one began (periods never overlap), so
  the subscription it goes back to is a cancelled one: recording and screening stop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from callguard.domain.billing import NuisanceUnit, Period, UnitChange, month_start, month_text

SERVICES = ("recording", "nuisance")


class VoidRefused(Exception):
    """Voiding this period would change what must not change (a conflict)."""


class NoSuchPeriod(LookupError):
    """No period of the service begins on that day."""


@dataclass(frozen=True)
class VoidPlan:
    voided: Period
    restore: Period | None  # the period the subscription goes back to; None: no subscription
    restore_unit: NuisanceUnit | None  # nuisance: the unit at the end of `restore`
    unit_changes: tuple[date, ...]  # days of the unit changes made inside `voided`: they go


def _inside(day: date, p: Period) -> bool:
    return day >= p.activated_on and (p.cancelled_on is None or day < p.cancelled_on)


def plan_void(service: str, periods: Sequence[Period], changes: Sequence[UnitChange],
              activated_on: date, today: date, force_past: bool = False) -> VoidPlan:
    """What voiding the period of `service` that began on `activated_on` does; NoSuchPeriod
    or VoidRefused (with the reason, one line) when it cannot be voided."""
    if service not in SERVICES:
        raise ValueError(f"service must be one of {', '.join(SERVICES)}")
    ordered = sorted(periods, key=lambda p: p.activated_on)
    found = [i for i, p in enumerate(ordered) if p.activated_on == activated_on]
    if not found:
        raise NoSuchPeriod(f"no {service} period began on {activated_on.isoformat()}")
    i = found[0]
    voided = ordered[i]
    if i != len(ordered) - 1:
        raise VoidRefused(
            f"the {service} period from {activated_on.isoformat()} is not the latest (one "
            f"began on {ordered[-1].activated_on.isoformat()}): void the later one first")
    this_month = month_start(today)
    if voided.activated_on < this_month and not force_past:
        raise VoidRefused(
            f"the {service} period from {activated_on.isoformat()} was active before this "
            f"month ({month_text(this_month)}): its bills may have been sent; to void it "
            "anyway, force it (CLI --force-past, API force_past)")
    restore = ordered[i - 1] if i > 0 else None
    inside_voided = tuple(sorted(c.changed_on for c in changes if _inside(c.changed_on, voided)))
    restore_unit: NuisanceUnit | None = None
    if service == "nuisance" and restore is not None:
        restore_unit = restore.unit
        for change in sorted(changes, key=lambda c: c.changed_on):
            if _inside(change.changed_on, restore):
                restore_unit = change.new_unit
        if restore_unit is None:
            raise ValueError(f"nuisance period from {restore.activated_on.isoformat()} "
                             "has no unit")
    return VoidPlan(voided, restore, restore_unit, inside_voided)
