"""Hostile values in every flex-context field and every device field: a schedule, or a
refusal naming a field (422); never any other exception (what an API turns into a 500).

The request is tests/test_optional_fields.py's ``FULL`` (every field of every spec); one
field at a time gets a value from a list of the usual suspects."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from test_optional_fields import FULL

from vpp.errors import InfeasibleError, RequestValidationError
from vpp.site import schedule

HOSTILE: list[Any] = [
    -1,
    0,
    "-5 kW",
    "NaN kW",
    "nan",
    "inf",
    "1e309 kW",
    "1e300 EUR/kW",
    "",
    "abc",
    "5 parsecs",
    [],
    {},
    [{}],
    {"values": [], "unit": "kW"},
    {"values": [1.0], "unit": "kW"},
    {"values": ["x"] * 8, "unit": "kW"},
    None,
    True,
    "\x00",
    "😀",
    10**400,
]

FIELDS: list[tuple[str, str]] = [
    *(("flex-context", key) for key in FULL["flex-context"]),
    *((d["name"], key) for d in FULL["flex-model"] for key in d if key not in ("name", "type")),
]


def _with(owner: str, key: str, value: Any) -> dict[str, Any]:
    request = copy.deepcopy(FULL)
    if owner == "flex-context":
        request["flex-context"][key] = value
    else:
        next(d for d in request["flex-model"] if d["name"] == owner)[key] = value
    return request


@pytest.mark.parametrize(("owner", "key"), FIELDS, ids=[f"{o}.{k}" for o, k in FIELDS])
def test_hostile_values_are_refused_by_name_or_scheduled(owner: str, key: str) -> None:
    for value in HOSTILE:
        try:
            result = schedule(_with(owner, key, value))
        except RequestValidationError as err:
            assert err.issues and all(i.field for i in err.issues), (key, value)
            continue
        except InfeasibleError as err:
            assert err.constraint, (key, value)
            continue
        except Exception as err:  # pragma: no cover - the message is the point
            raise AssertionError(f"{owner}.{key} = {value!r}: {type(err).__name__}: {err}") from err
        assert result["status"] in ("finished", "time-limited"), (key, value)
