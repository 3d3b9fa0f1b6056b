"""KPIs of a finished scheduling job: ``GET /api/v1/scheduling-job/{id}/report``.

Recomputed from the job's stored result and request by :func:`vpp.kpi.site_kpis` (module
docstring: the definitions): a site job's KPIs, or a portfolio job's per site and summed.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api import problems
from api.deps import CallerDep, KnownQuery, SessionDep
from api.routes.jobs import _visible_job
from vpp.kpi import site_kpis
from vpp.portfolio import parse_portfolio

__all__ = ["get_report", "portfolio_kpis", "router"]

router = APIRouter(tags=["scheduling jobs"])

_SUMMED = ("energy-cost", "baseline-cost", "savings", "import", "export", "production",
           "consumption")  # fmt: skip


@router.get(
    "/api/v1/scheduling-job/{job_id}/report",
    dependencies=[KnownQuery],
    responses={
        200: {
            "description": "The job's KPIs (docs/reports.md)",
            "content": {"application/json": {"schema": {"type": "object"}}},
        },
        **problems.errors(
            e404="No such job, or not visible to the caller",
            e409="The job is not finished (`job-status` says what it is)",
        ),
    },
)
def get_report(job_id: str, request: Request, caller: CallerDep, session: SessionDep) -> Any:
    """KPIs of the finished job: energy cost, savings against a price-blind schedule of the
    same devices, import/export, self-consumption and self-sufficiency, peaks, penalties."""
    job = _visible_job(session, caller, job_id)
    if job.status != "finished" or not job.result:
        return problems.problem(
            409,
            "Conflict",
            f"job {job_id} is {job.status}; its report exists once it has finished",
            request,
            **{"job-status": job.status},
        )
    if job.kind == "portfolio":
        body = portfolio_kpis(job.request, job.result)
    elif job.kind in ("storage", "shifting"):
        body = {"site": site_kpis(job.request, job.result)}
    else:
        return problems.problem(
            409, "Conflict", f"a {job.kind} job has no schedule to report on", request
        )
    return JSONResponse({"job": job.id, **body})


def portfolio_kpis(request: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    """Each site's KPIs and the portfolio's: sums, the largest peaks and the shares of the
    sums (peaks of the sum would need the sites' powers at once: ``result`` has them)."""
    parsed = parse_portfolio(request)
    index = {s.id: i for i, s in enumerate(parsed.sites)}
    sites = {
        entry["id"]: site_kpis(parsed.site_request(index[entry["id"]]), entry)
        for entry in result["sites"]
    }
    total: dict[str, Any] = {
        key: {
            "value": round(sum(k[key]["value"] for k in sites.values()), 9),
            "unit": next(iter(sites.values()))[key]["unit"],
        }
        for key in _SUMMED
    }
    power = result["portfolio"]["power"]["values"]
    total["peak-import"] = {"value": max([0.0, *power]), "unit": "kW"}
    total["peak-export"] = {"value": max([0.0, *(-p for p in power)]), "unit": "kW"}
    production, consumption = total["production"]["value"], total["consumption"]["value"]
    exported, imported = total["export"]["value"], total["import"]["value"]
    total["self-consumption"] = (
        None if production <= 1e-12 else round(max(0.0, 1 - exported / production), 9)
    )
    total["self-sufficiency"] = (
        None if consumption <= 1e-12 else round(min(1.0, max(0.0, 1 - imported / consumption)), 9)
    )
    return {"portfolio": total, "sites": sites}
