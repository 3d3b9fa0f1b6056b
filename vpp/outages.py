"""Outages as unavailability: a device (or a whole site) out of service during a period.

A device's ``availability`` lists the windows it may run in (power 0 outside). An outage
``[a, b)`` removes that period from them: the windows become their parts outside every
outage, within the horizon ``[start, end)``. A device without ``availability`` is available
over the whole horizon before the outages are removed. Windows that a malformed entry makes
unreadable are left to the request's own validation, which names the field.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from vpp.device import Period

__all__ = ["apply_outages", "subtract"]

Window = tuple[datetime, datetime]


def subtract(windows: Sequence[Window], outages: Sequence[Window]) -> list[Window]:
    """The parts of ``windows`` outside every outage, in order."""
    out = list(windows)
    for a, b in outages:
        cut: list[Window] = []
        for s, e in out:
            if b <= s or a >= e:  # no overlap
                cut.append((s, e))
                continue
            if s < a:
                cut.append((s, a))
            if b < e:
                cut.append((b, e))
        out = cut
    return out


def apply_outages(
    device: dict[str, Any], outages: Sequence[Window], start: datetime, end: datetime
) -> dict[str, Any]:
    """``device`` (a flex-model entry) with ``outages`` removed from its availability; the
    entry itself when no outage overlaps the horizon."""
    relevant = [(a, b) for a, b in outages if a < end and b > start]
    if not relevant:
        return device
    raw = device.get("availability")
    if raw is None:
        windows: list[Window] = [(start, end)]
    else:
        try:
            entries = raw if isinstance(raw, list) else [raw]
            periods = [Period.model_validate(e) for e in entries]
        except (ValidationError, TypeError):
            return device  # the request's validation names the bad entry
        windows = [(p.start, p.stop) for p in periods]
    kept = subtract(windows, relevant)
    return {
        **device,
        "availability": [{"start": s.isoformat(), "end": e.isoformat()} for s, e in kept],
    }
