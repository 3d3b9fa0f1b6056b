"""Forecasting jobs (docs/forecasting.md): ``POST /api/v1/forecasting-job`` forecasts a stored
sensor at once and stores the forecast on it as beliefs; ``GET /api/v1/forecasting-job/{id}``
reads a forecasting job back."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api import schemas
from api.deps import CallerDep, KnownQuery, OperatorDep, SessionDep
from api.forecasting import ForecastingIn, run_forecast
from api.problems import errors
from api.routes.jobs import _visible_job
from vpp.errors import NotFoundError

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["forecasting"], dependencies=[KnownQuery])


@router.post("/forecasting-job", response_model=schemas.ForecastingJob, responses=errors(403, 404))
def post_forecasting_job(
    body: ForecastingIn, caller: OperatorDep, session: SessionDep
) -> dict[str, Any]:
    """Forecast a stored sensor's next ``duration`` from its last ``history`` (LightGBM
    quantile regression on calendar features, holidays and seasonal lags; docs/forecasting.md)
    with a prediction interval of ``coverage``. The point forecast is stored on the sensor
    as beliefs (belief time: now), so schedules reading the sensor use it; answered at once
    (a year of 15-minute history trains in about a second)."""
    job_id, result = run_forecast(session, caller, body)
    return {"forecasting-job": job_id, "status": "finished", "result": result}


@router.get(
    "/forecasting-job/{job_id}", response_model=schemas.ForecastingJob, responses=errors(404)
)
def get_forecasting_job(job_id: str, caller: CallerDep, session: SessionDep) -> dict[str, Any]:
    """A forecasting job: the forecast it made and stored."""
    job = _visible_job(session, caller, job_id)
    if job.kind != "forecasting":
        raise NotFoundError(f"no forecasting job {job_id}")
    return {"forecasting-job": job.id, "status": job.status, "result": job.result}
