"""S2 devices inside a request: ``{"type": "s2", "name": ..., "messages": [...]}``.

A flex-model entry of type ``s2`` carries a device's S2 messages as JSON (what an S2
resource manager sends, ``message_type`` included). Before the request is validated, each
such entry is replaced by the flex-model device its control type maps onto
(:mod:`vpp.s2`: FRBC -> storage, PPBC -> shiftable, PEBC -> curtailable generation, DDBC ->
inflexible, OMBC -> modes), so everything after validation sees ordinary devices.
The schedule's entry of that device then carries ``s2-instructions``: the control type's
instructions, as S2 JSON.

The control type is read off the message types; the messages a type takes (optional ones
in brackets):

* FRBC: ``FRBC.SystemDescription``, ``FRBC.StorageStatus`` [``FRBC.FillLevelTargetProfile``,
  ``FRBC.LeakageBehaviour``, ``FRBC.UsageForecast``]
* PPBC: ``PPBC.PowerProfileDefinition``
* PEBC: ``PEBC.PowerConstraints``, ``PowerForecast``
* DDBC: ``DDBC.SystemDescription``, ``DDBC.AverageDemandRateForecast``
* OMBC: ``OMBC.SystemDescription`` [``OMBC.Status``]

Every problem is a :class:`~vpp.errors.FieldIssue` naming ``flex-model[i].messages[j]...``
(a message s2-python refuses, an unknown or repeated message type, a mix of control types,
what :mod:`vpp.s2` cannot map exactly). ``s2-python`` is imported only when a request has
an S2 device.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from vpp.errors import FieldIssue, RequestValidationError

__all__ = ["S2Source", "expand_s2_devices", "has_s2_devices", "s2_instructions"]

_REQUIRED = {
    "FRBC": ("FRBC.SystemDescription", "FRBC.StorageStatus"),
    "PPBC": ("PPBC.PowerProfileDefinition",),
    "PEBC": ("PEBC.PowerConstraints", "PowerForecast"),
    "DDBC": ("DDBC.SystemDescription", "DDBC.AverageDemandRateForecast"),
    "OMBC": ("OMBC.SystemDescription",),
}
_OPTIONAL = {
    "FRBC": ("FRBC.FillLevelTargetProfile", "FRBC.LeakageBehaviour", "FRBC.UsageForecast"),
    "OMBC": ("OMBC.Status",),
}


@dataclass(frozen=True)
class S2Source:
    """What a device's instructions are emitted from: its control type and its parsed
    messages by message type."""

    control_type: str
    messages: dict[str, Any]


def has_s2_devices(raw: Any) -> bool:
    """Whether a raw request's flex-model holds an ``s2`` entry (cheap; no s2-python)."""
    if not isinstance(raw, dict):
        return False
    model = raw.get("flex-model", raw.get("flex_model"))
    entries = model if isinstance(model, list) else [model]
    return any(isinstance(e, dict) and e.get("type") == "s2" for e in entries)


def expand_s2_devices(
    raw: dict[str, Any], start: datetime, resolution: timedelta, steps: int
) -> tuple[dict[str, Any], dict[str, S2Source]]:
    """``raw`` with each ``s2`` entry replaced by its flex-model device, and the sources of
    the instructions by device name. Raises :class:`RequestValidationError` naming every
    bad entry."""
    from vpp import s2

    grid = s2.S2Grid(start, resolution, steps)
    key = "flex-model" if "flex-model" in raw else "flex_model"
    single = isinstance(raw[key], dict)
    entries = [raw[key]] if single else list(raw[key])
    issues: list[FieldIssue] = []
    sources: dict[str, S2Source] = {}
    for i, entry in enumerate(entries):
        if not (isinstance(entry, dict) and entry.get("type") == "s2"):
            continue
        path = f"flex-model[{i}]" if not single else "flex-model"
        try:
            device, source = _device(entry, grid, path)
        except RequestValidationError as err:
            issues += err.issues
            continue
        entries[i] = device
        sources[device["name"]] = source
    if issues:
        raise RequestValidationError(issues)
    return {**raw, key: entries[0] if single else entries}, sources


def _device(entry: dict[str, Any], grid: Any, path: str) -> tuple[dict[str, Any], S2Source]:
    unknown = set(entry) - {"type", "name", "messages"}
    if unknown:
        raise RequestValidationError(
            [FieldIssue(f"{path}.{k}", "unknown field of an s2 device") for k in sorted(unknown)]
        )
    raw_messages = entry.get("messages")
    if not isinstance(raw_messages, list) or not raw_messages:
        raise RequestValidationError.single(f"{path}.messages", "a non-empty list of S2 messages")
    messages, index = _parse_messages(raw_messages, f"{path}.messages")
    control = _control_type(messages, f"{path}.messages")
    name = entry.get("name", control.lower())
    if not isinstance(name, str):
        raise RequestValidationError.single(f"{path}.name", "must be a string")
    from vpp.s2 import S2MappingError

    try:
        device = _map(control, messages, grid, name)
    except S2MappingError as err:
        raise RequestValidationError.single(_s2_path(err.field, index, path), str(err)) from None
    return device, S2Source(control, messages)


def _message_classes() -> dict[str, type[Any]]:
    from s2python import common, ddbc, frbc, ombc, pebc, ppbc

    classes: dict[str, type[Any]] = {}
    for module in (common, ddbc, frbc, ombc, pebc, ppbc):
        for _, cls in inspect.getmembers(module, inspect.isclass):
            field = getattr(cls, "model_fields", {}).get("message_type")
            if field is not None and isinstance(field.default, str):
                classes[field.default] = cls
    return classes


def _parse_messages(raw: list[Any], path: str) -> tuple[dict[str, Any], dict[str, int]]:
    classes = _message_classes()
    messages: dict[str, Any] = {}
    index: dict[str, int] = {}
    issues: list[FieldIssue] = []
    for j, message in enumerate(raw):
        kind = message.get("message_type") if isinstance(message, dict) else None
        if kind not in classes:
            issues.append(
                FieldIssue(f"{path}[{j}].message_type", f"not an S2 message type: {kind!r}")
            )
            continue
        if kind in messages:
            issues.append(FieldIssue(f"{path}[{j}]", f"a second {kind}; give one"))
            continue
        try:
            messages[kind] = classes[kind].model_validate(message)
        except ValidationError as err:
            for e in err.errors(include_url=False):
                loc = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in e["loc"])
                issues.append(FieldIssue(f"{path}[{j}]{loc}", e["msg"]))
            continue
        index[kind] = j
    if issues:
        raise RequestValidationError(issues)
    return messages, index


def _control_type(messages: dict[str, Any], path: str) -> str:
    given = set(messages)
    for control, required in _REQUIRED.items():
        allowed = {*required, *_OPTIONAL.get(control, ())}
        if given & set(required) and given <= allowed:
            missing = [m for m in required if m not in given]
            if missing:
                raise RequestValidationError.single(path, f"{control} needs {', '.join(missing)}")
            return control
    raise RequestValidationError.single(
        path,
        f"no one S2 control type takes these messages together: {', '.join(sorted(given))} "
        "(FRBC, PPBC, PEBC, DDBC or OMBC; see docs/flex-model.md, 'S2 devices')",
    )


def _map(control: str, m: dict[str, Any], grid: Any, name: str) -> dict[str, Any]:
    from vpp import s2

    device: dict[str, Any]
    if control == "FRBC":
        device = s2.frbc_device(
            m["FRBC.SystemDescription"],
            m["FRBC.StorageStatus"],
            grid,
            name=name,
            fill_level_target_profile=m.get("FRBC.FillLevelTargetProfile"),
            leakage_behaviour=m.get("FRBC.LeakageBehaviour"),
            usage_forecast=m.get("FRBC.UsageForecast"),
        )
    elif control == "PPBC":
        device = s2.ppbc_device(m["PPBC.PowerProfileDefinition"], grid, name=name)
    elif control == "PEBC":
        device = s2.pebc_device(m["PEBC.PowerConstraints"], m["PowerForecast"], grid, name=name)
    elif control == "DDBC":
        device = s2.ddbc_device(
            m["DDBC.SystemDescription"], m["DDBC.AverageDemandRateForecast"], grid, name=name
        )
    else:
        device = s2.ombc_device(
            m["OMBC.SystemDescription"], grid, name=name, status=m.get("OMBC.Status")
        )
    return device


def _s2_path(field: str, index: dict[str, int], path: str) -> str:
    """An S2 field (``FRBC.SystemDescription.actuators[0]``) as a request path."""
    for kind in sorted(index, key=len, reverse=True):
        if field == kind or field.startswith(f"{kind}."):
            return f"{path}.messages[{index[kind]}]{field[len(kind) :]}"
    return f"{path}.messages"


def s2_instructions(entry: dict[str, Any], source: S2Source, horizon: Any) -> list[Any]:
    """A scheduled S2 device's instructions as S2 JSON; ``entry`` is its schedule entry
    (``to_json()["devices"][i]``), ``horizon`` the schedule's :class:`~vpp.timeseries.Horizon`."""
    from vpp import s2

    grid = s2.S2Grid(horizon.start, horizon.resolution, horizon.steps)
    m = source.messages
    out: list[Any]
    if source.control_type == "FRBC":
        out = s2.frbc_instructions(m["FRBC.SystemDescription"], entry, grid)
    elif source.control_type == "PPBC":
        out = s2.ppbc_instructions(m["PPBC.PowerProfileDefinition"], entry, grid)
    elif source.control_type == "PEBC":
        out = s2.pebc_instructions(m["PEBC.PowerConstraints"], entry, grid)
    elif source.control_type == "DDBC":
        out = s2.ddbc_instructions(m["DDBC.SystemDescription"], entry, grid)
    else:
        out = s2.ombc_instructions(m["OMBC.SystemDescription"], entry, grid)
    return [message.to_json_dict() for message in out]
