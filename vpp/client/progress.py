"""vpp's one ADMM progress bar: for a job polled over the API (:meth:`ProgressBar.update`
with the job's body) and for a portfolio solved in this process (:meth:`ProgressBar.step`
with each ``vpp.admm.Progress`` entry, as ``vpp solve`` draws it)."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import IO, Any

__all__ = ["ADMM_MAX_ITERATIONS", "ProgressBar"]

ADMM_MAX_ITERATIONS = 100
"""The default ADMM iteration cap (``vpp.admm.AdmmSettings.max_iterations``): the progress
bar's length until the job's ``progress`` says the server's own (``max-iterations``: the
request's ``max-iterations``, or the server's default)."""

_FIELDS = (  # shown when the progress has them: label, key, format, unit
    ("r", "primal-residual", ".2e", ""),
    ("s", "dual-residual", ".2e", ""),
    ("rho", "rho", ".2e", ""),
    ("cost", "objective", ".2f", " EUR"),
    ("bound", "lower-bound", ".2f", " EUR"),
    ("gap", "certified-gap", ".2e", ""),
)


def entry(progress: Mapping[str, Any], key: str) -> Any:
    """``progress[key]`` under its kebab-case or snake_case name."""
    return progress.get(key, progress.get(key.replace("-", "_")))


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class ProgressBar:
    """One line on ``stream`` (stderr) per job, rewritten in place on a terminal or in a
    notebook; in a log, one line per status change and per ten iterations."""

    width = 30

    def __init__(
        self, label: str, total: int = ADMM_MAX_ITERATIONS, stream: IO[str] | None = None
    ) -> None:
        self.label = label
        self.total = total
        self.stream: IO[str] = stream if stream is not None else sys.stderr
        isatty = getattr(self.stream, "isatty", None)
        in_notebook = stream is None and "ipykernel" in sys.modules
        self.inplace = bool(isatty is not None and isatty()) or in_notebook
        self.shown = ""
        self.last: tuple[str, int] | None = None  # what the line shows
        self.k = 0
        self.progress: dict[str, Any] = {}

    def update(self, body: Mapping[str, Any]) -> None:
        """Show a polled job's body: its ``status``, ``progress`` and (once finished) the
        iterations its result reports."""
        if body.get("progress"):
            self.progress = dict(body["progress"])
        cap = entry(self.progress, "max-iterations")
        if isinstance(cap, int) and not isinstance(cap, bool) and cap > 0:
            self.total = cap  # the server's cap for this job
        phase = entry(self.progress, "phase")
        status = str(body.get("status"))
        if phase and body.get("status") in ("queued", "running"):
            status += f" {phase}"  # e.g. "running starting": actors are starting
        summary = (body.get("result") or {}).get("portfolio") or {}
        reported = entry(self.progress, "iteration") or summary.get("iterations") or 0
        self._show(status, int(reported))

    def step(self, progress: Mapping[str, Any]) -> None:
        """Show one ADMM iteration's entry of a portfolio solved in this process."""
        self.progress = dict(progress)
        self._show("", int(entry(progress, "iteration") or 0))

    def _show(self, status: str, reported: int) -> None:
        self.k = max(self.k, reported)
        if self.last is not None:
            last_status, last_k = self.last
            if status == last_status and (
                self.k == last_k or (not self.inplace and self.k // 10 == last_k // 10)
            ):
                return
        self.last = (status, self.k)
        self._write(self.line(status))

    def line(self, status: str) -> str:
        """The bar, the iteration, ``status`` and the progress' numbers."""
        filled = int(self.width * min(self.k, self.total) / self.total)
        bar = f"[{'#' * filled}{'.' * (self.width - filled)}]"
        text = f"{self.label} ADMM {bar} {self.k:3d}/{self.total}"
        text += f" {status}" if status else ""
        for name, key, spec, unit in _FIELDS:
            value = entry(self.progress, key)
            if _number(value):
                text += f" {name}={value:{spec}}{unit}"
        return text

    def _write(self, line: str) -> None:
        if self.inplace:
            pad = max(0, len(self.shown) - len(line))
            self.stream.write("\r" + line + " " * pad)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
        self.shown = line

    def close(self) -> None:
        if self.inplace and self.shown:
            self.stream.write("\n")
            self.stream.flush()
