"""The asset registry: what a device kind is, and the one table of the kinds a site knows.

An :class:`AssetKind` bundles everything the rest of vpp needs to know about a kind:

* ``name``: the flex-model's ``type`` (``"storage"``), also what ``devices.type`` stores;
* ``spec``: its pydantic request model, a :class:`~vpp.device.DeviceSpec` whose ``type`` is
  ``Literal[name]`` (the request union is discriminated on it);
* ``resolve``: the validated spec becomes numpy arrays on the horizon ("params"), raising a
  :class:`~vpp.errors.RequestValidationError` that names every bad field;
* ``precheck`` (optional): exact cheap checks before solving, given the power the site's
  connection leaves the device; raises :class:`~vpp.errors.InfeasibleError`;
* ``formulate``: adds the kind's columns and named constraint families to the site's
  :class:`~vpp.linear.LinearModel` and says how its power is read (:class:`DeviceVars`);
* ``result_fields``: what a device of the kind adds to its entry of the schedule JSON next
  to ``power`` (``soc`` for storage and heat).

The request union (:func:`vpp.request.device_specs`), the site builder (:mod:`vpp.site`)
and the kinds the API accepts (and so stores) all read this registry. The built-in kinds are
registered by :mod:`vpp.assets` on import; see docs/design.md, "How to add an asset kind".
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar, get_args, get_origin

import numpy as np

from vpp.device import Common, DeviceSpec, DeviceVars
from vpp.linear import LinearModel
from vpp.timeseries import Horizon

__all__ = [
    "MAX_NAME_LENGTH",
    "SOC",
    "AssetKind",
    "ParamsT",
    "ResultField",
    "SpecT",
    "UnknownAssetKindError",
    "get",
    "kinds",
    "names",
    "register",
    "registered",
    "unregister",
]

MAX_NAME_LENGTH = 16
"""A kind's name is stored in ``devices.type`` (``VARCHAR(16)``)."""

RESERVED_KEYS = frozenset({"name", "type", "power"})
"""Keys of a device's schedule entry that every kind writes; result fields may not use them."""

SpecT = TypeVar("SpecT", bound=DeviceSpec)
ParamsT = TypeVar("ParamsT")


@dataclass(frozen=True)
class ResultField:
    """A series a kind adds to each of its devices' schedule entries, next to ``power``:
    ``{"<key>": {"values": [...], "unit": "<unit>"}}``. ``read`` takes the device's
    variables and the solution vector and returns the values (or ``None`` to leave the key
    out for this device)."""

    key: str
    unit: str
    read: Callable[[DeviceVars, np.ndarray], np.ndarray | None]


def _soc(dv: DeviceVars, x: np.ndarray) -> np.ndarray | None:
    return None if dv.soc is None else np.asarray(x[dv.soc])


SOC = ResultField("soc", "kWh", _soc)
"""The state of charge at every instant (steps + 1 values), for kinds that set ``dv.soc``."""


@dataclass(frozen=True)
class AssetKind(Generic[SpecT, ParamsT]):
    """One device kind: its request model, its formulation and its result fields."""

    name: str
    spec: type[SpecT]
    resolve: Callable[[SpecT, Horizon, Common, str], ParamsT]
    formulate: Callable[[ParamsT, LinearModel, Horizon], DeviceVars]
    precheck: Callable[[ParamsT, Horizon, np.ndarray, np.ndarray], None] | None = None
    result_fields: tuple[ResultField, ...] = field(default=())


class UnknownAssetKindError(KeyError):
    """No asset kind of that name is registered."""


_KINDS: dict[str, AssetKind[Any, Any]] = {}


def register(kind: AssetKind[SpecT, ParamsT]) -> AssetKind[SpecT, ParamsT]:
    """Add ``kind`` to the registry (after the kinds registered before it).

    Refused (``ValueError``/``TypeError``) when the name is taken, too long to store, or does
    not match the spec's ``type: Literal[name]``, or a result field reuses a reserved key.
    """
    if kind.name in _KINDS:
        raise ValueError(f"asset kind {kind.name!r} is registered already")
    if not kind.name or len(kind.name) > MAX_NAME_LENGTH:
        raise ValueError(
            f"asset kind name {kind.name!r} must have 1 to {MAX_NAME_LENGTH} characters"
        )
    type_field = kind.spec.model_fields.get("type")
    annotation = None if type_field is None else type_field.annotation
    if get_origin(annotation) is not Literal or get_args(annotation) != (kind.name,):
        raise TypeError(
            f"{kind.spec.__name__}.type must be annotated Literal[{kind.name!r}], "
            f"got {annotation!r}"
        )
    keys = [f.key for f in kind.result_fields]
    clash = sorted(RESERVED_KEYS.intersection(keys) | {k for k in keys if keys.count(k) > 1})
    if clash:
        raise ValueError(f"result fields of {kind.name!r} reuse the keys {clash}")
    _KINDS[kind.name] = kind
    return kind


def unregister(name: str) -> None:
    """Remove the kind ``name`` (tests that register one of their own)."""
    if name not in _KINDS:
        raise UnknownAssetKindError(name)
    del _KINDS[name]


@contextmanager
def registered(kind: AssetKind[SpecT, ParamsT]) -> Iterator[AssetKind[SpecT, ParamsT]]:
    """Register ``kind`` for the duration of a ``with`` block."""
    register(kind)
    try:
        yield kind
    finally:
        unregister(kind.name)


def kinds() -> tuple[AssetKind[Any, Any], ...]:
    """Every registered kind, in registration order."""
    return tuple(_KINDS.values())


def names() -> tuple[str, ...]:
    """The ``type`` of every registered kind, in registration order."""
    return tuple(_KINDS)


def get(name: str) -> AssetKind[Any, Any]:
    """The kind ``name``; :class:`UnknownAssetKindError` if none is registered."""
    try:
        return _KINDS[name]
    except KeyError:
        raise UnknownAssetKindError(name) from None
