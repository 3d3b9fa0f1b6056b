"""Scenario solves on Ray: the independent per-scenario problems of a two-stage schedule
(:func:`vpp.stochastic.solve_robust`) as Ray tasks, launched together, gathered once."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import ray

from vpp.stochastic import solve_robust

__all__ = ["ray_map", "solve_robust_on_ray"]

T = TypeVar("T")
R = TypeVar("R")


def ray_map(fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
    """``[fn(item) for item in items]``, each a Ray task (Ray must be initialised)."""
    task = ray.remote(fn)
    refs = [task.remote(item) for item in items]
    results: list[R] = ray.get(refs)
    return results


def solve_robust_on_ray(request: dict[str, Any]) -> dict[str, Any]:
    """:func:`vpp.stochastic.solve_robust` with the scenarios' own solves on Ray."""
    return solve_robust(request, map=ray_map)
