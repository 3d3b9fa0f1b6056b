"""The asset kinds a site can hold, in one registry.

Each kind is one module here that defines an :class:`AssetKind` (its request model, its
resolve/precheck/formulate steps and its result fields) named ``KIND``; :data:`BUILTIN`
registers them, in this order (the order of the request union and of its error messages).
Adding a kind means one new module and one entry in :data:`BUILTIN` (docs/design.md, "How to
add an asset kind").

Everything else derives from the registry: the request union and ``DEVICE_TYPES``
(:mod:`vpp.request`), the site builder (:mod:`vpp.site`) and so the kinds the API accepts
and stores.
"""

from __future__ import annotations

from typing import Any

from vpp.assets import generation, heat, inflexible, modes, shiftable, storage
from vpp.assets.registry import (
    MAX_NAME_LENGTH,
    SOC,
    AssetKind,
    ResultField,
    UnknownAssetKindError,
    get,
    kinds,
    names,
    register,
    registered,
    unregister,
)

__all__ = [
    "BUILTIN",
    "MAX_NAME_LENGTH",
    "SOC",
    "AssetKind",
    "ResultField",
    "UnknownAssetKindError",
    "get",
    "kinds",
    "names",
    "register",
    "registered",
    "unregister",
]

BUILTIN: tuple[AssetKind[Any, Any], ...] = (
    storage.KIND,
    heat.KIND,
    shiftable.KIND,
    generation.KIND,
    inflexible.KIND,
    modes.KIND,
)

for _kind in BUILTIN:
    register(_kind)
