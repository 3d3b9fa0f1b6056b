"""Forecasts of a regular time series with prediction intervals, and their backtest.

The model (:func:`forecast`) is LightGBM gradient boosting with the quantile (pinball) loss,
fitted three times: for the median and for the two quantiles that bound the central
interval of probability ``coverage``::

    q_lo = (1 - coverage) / 2,   q_mid = 0.5,   q_hi = (1 + coverage) / 2

Each regressor minimises the pinball loss of its quantile ``q`` over the training rows,
``L_q(y, f) = max(q (y - f), (q - 1) (y - f))``, so its prediction estimates the conditional
``q``-quantile of the value given the features. The features of the value at time ``t``:

- calendar: the time of day (minutes since local midnight), the day type (the day of the
  week, 0 = Monday, with holidays as Sundays, 6) and a holiday flag (the local date of ``t``
  is a holiday of ``country`` in the ``holidays`` package, or one of the ``holidays`` dates
  passed in);
- seasonal lags: ``y[t - D]`` and ``y[t - W]`` with ``D`` one day and ``W`` one week, each
  pushed back by whole days (weeks) until it lies in the history for *every* forecast step
  (``D = ceil(g / 1 day) days``, ``W = ceil(g / 1 week) weeks`` where ``g`` is the span from
  the last observed step to the last forecast step); the mean of ``y[t - D - k days]`` over
  ``k = 0 .. 6``; the value on the latest day, ``D`` or more back, of ``t``'s day type (its
  weekday, a holiday counting as a Sunday: a holiday is forecast from the last Sunday or
  holiday, which trees could not learn from a handful of holidays alone); and the holiday
  flag of ``t - D``.

As every lag of every forecast step is an observed value, the forecast of all steps is
*direct*: one prediction per step, no recursion on predicted values, so errors do not
compound over the horizon. The training rows are every observed step whose lags are in the
history too, with the very same lags.

The baseline, :func:`seasonal_naive`, repeats the value one season back; its interval adds
the empirical quantiles of the in-sample seasonal differences. :func:`backtest` scores both
on a rolling origin: for each origin, train on everything before it and forecast the next
``horizon``; :func:`evaluate` gives MAE, RMSE and the interval coverage of one forecast.

Everything is deterministic: LightGBM runs single-threaded with ``deterministic=True`` and a
fixed seed, so the same history gives the same forecast on every machine with the same
LightGBM version.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import holidays as holidays_package
import lightgbm
import numpy as np
import pandas as pd

from vpp.errors import RequestValidationError

__all__ = [
    "MODEL",
    "NAIVE",
    "Backtest",
    "Forecast",
    "Scores",
    "backtest",
    "evaluate",
    "forecast",
    "repeat_season",
    "seasonal_naive",
]

logger = logging.getLogger(__name__)

DAY = timedelta(days=1)
WEEK = timedelta(weeks=1)
MODEL = "lightgbm-quantile"  # Forecast.model of forecast()
NAIVE = "seasonal-naive"  # Forecast.model of seasonal_naive()
FEATURES = (
    "minute_of_day",
    "day_type",
    "holiday",
    "lag_day",
    "lag_week",
    "mean_week_of_day_lags",
    "lag_same_day_type",
    "holiday_lag_day",
)
SUNDAY = 6.0  # the day type of a holiday
RECENT_DAYS = 7  # the daily lags averaged in "mean_week_of_day_lags"
# Small trees, slow learning, at least 50 rows a leaf: quantile trees fitted in-sample overfit
# (intervals too narrow) with less. A year of hourly data (8,760 rows) takes well under a
# second per quantile on one thread.
PARAMS: dict[str, Any] = {
    "objective": "quantile",
    "learning_rate": 0.03,
    "num_leaves": 15,
    "min_data_in_leaf": 50,
    "deterministic": True,
    "force_col_wise": True,
    "num_threads": 1,
    "seed": 0,
    "verbosity": -1,
}
ROUNDS = 300


@dataclass(frozen=True)
class Forecast:
    """A forecast per step: ``mean`` the point forecast (the median of the quantile model,
    the repeated value of the seasonal-naive one), ``[lower, upper]`` the interval meant to
    hold the value with probability ``coverage``. ``index`` holds the start of each step."""

    index: pd.DatetimeIndex
    mean: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    model: str
    coverage: float

    def to_frame(self) -> pd.DataFrame:
        """The three series as columns ``mean``, ``lower``, ``upper`` on :attr:`index`."""
        return pd.DataFrame(
            {"mean": self.mean, "lower": self.lower, "upper": self.upper}, index=self.index
        )


@dataclass(frozen=True)
class Scores:
    """Errors of forecasts against what happened, over ``n`` scored steps::

    MAE      = mean |y - mean|
    RMSE     = sqrt(mean (y - mean)^2)
    coverage = share of steps with lower <= y <= upper
    """

    mae: float
    rmse: float
    coverage: float
    n: int


@dataclass(frozen=True)
class Backtest:
    """A rolling-origin backtest: the model's and the seasonal-naive baseline's scores over
    the same steps, and the origins (the first forecast step of each fold)."""

    model: Scores
    naive: Scores
    origins: tuple[pd.Timestamp, ...]
    horizon: timedelta
    coverage: float

    @property
    def mae_skill(self) -> float:
        """``1 - MAE(model) / MAE(naive)``: the share of the baseline's error removed."""
        return 1.0 - self.model.mae / self.naive.mae


# -- the model ---------------------------------------------------------------------------------


def forecast(
    history: pd.Series,
    *,
    start: datetime,
    steps: int,
    resolution: timedelta,
    coverage: float = 0.8,
    country: str | None = None,
    holidays: Collection[date] = (),
) -> Forecast:
    """Forecast ``steps`` values of ``resolution`` from ``start`` with LightGBM quantile
    regression (see the module's docstring for the model).

    ``history``: values on a regular, timezone-aware index of step ``resolution`` (NaN for
    missing values, which are not learnt from). ``start``: the first forecast step, after the
    last observed one and on its grid. ``coverage``: the probability the interval is meant to
    hold, in (0, 1). ``country``: an ISO 3166-1 code such as ``"NL"`` whose public holidays,
    from the ``holidays`` package, are holidays; ``holidays``: more holiday dates (e.g. a
    site's holiday annotations). Dates are taken in the timezone of ``history``'s index.

    Needs at least the weekly lag plus one day of history to learn from (8 days when the
    horizon is within a day). Raises :class:`~vpp.errors.RequestValidationError` naming the
    argument that is wrong.
    """
    _check_coverage(coverage)
    _check_history(history, resolution)
    index = _future_index(history, start, steps, resolution)
    lags = _lags(history.index[-1], index[-1])
    rows = _training_rows(history, lags)
    calendar = _holiday_calendar(country, holidays, history.index[0], index[-1])
    train = _features(history, rows, lags, calendar)
    future = _features(history, index, lags, calendar)
    target = history.reindex(rows).to_numpy(dtype=float)
    quantiles = ((1 - coverage) / 2, 0.5, (1 + coverage) / 2)
    predictions = [_fit_predict(train, target, future, q) for q in quantiles]
    # Separately fitted quantiles may cross; sorting each step's three values (the
    # "rearrangement" of Chernozhukov et al., 2010) restores lower <= median <= upper and
    # never makes the pinball loss worse.
    lower, mean, upper = np.sort(np.vstack(predictions), axis=0)
    logger.debug("forecast %d steps from %s on %d training rows", steps, start, len(rows))
    return Forecast(index, mean, lower, upper, MODEL, coverage)


def _lags(last_observed: pd.Timestamp, last_step: pd.Timestamp) -> tuple[timedelta, timedelta]:
    """The daily and weekly lag: one day (week) back, or the least whole number of days
    (weeks) that reaches into the history from the last forecast step."""
    gap = pd.Timedelta(last_step - last_observed).to_pytimedelta()
    return DAY * max(1, math.ceil(gap / DAY)), WEEK * max(1, math.ceil(gap / WEEK))


def _training_rows(history: pd.Series, lags: Sequence[timedelta]) -> pd.DatetimeIndex:
    """The observed steps whose lags are all within the history."""
    index = pd.DatetimeIndex(history.index)
    observed = index[history.notna().to_numpy()]
    rows = observed[observed - max(lags) >= index[0]]
    if len(rows) < _steps_per(DAY, index):
        have = index[-1] - index[0] + (index[1] - index[0])
        raise RequestValidationError.single(
            "history",
            f"too short: the model needs its longest lag ({_days(max(lags))}) plus one day of "
            f"observed values to learn from; the history spans {_days(have)} with "
            f"{len(rows)} usable steps",
        )
    return rows


def _features(
    history: pd.Series,
    times: pd.DatetimeIndex,
    lags: tuple[timedelta, timedelta],
    calendar: frozenset[date],
) -> np.ndarray:
    """The feature matrix (columns in :data:`FEATURES` order) of the values at ``times``."""
    day_lag, week_lag = lags
    local = times.tz_convert(pd.DatetimeIndex(history.index).tz)
    holiday = _is_holiday(local, calendar)
    columns = [
        (local.hour * 60 + local.minute).to_numpy(dtype=float),
        _day_type(local, calendar),
        holiday,
        history.reindex(times - day_lag).to_numpy(dtype=float),
        history.reindex(times - week_lag).to_numpy(dtype=float),
        _mean_of_daily_lags(history, times, day_lag),
        _same_day_type_lag(history, local, day_lag, calendar),
        _is_holiday(local - day_lag, calendar),
    ]
    return np.column_stack(columns)


def _day_type(local: pd.DatetimeIndex, calendar: frozenset[date]) -> np.ndarray:
    """The day of the week (0 = Monday), a holiday counting as a Sunday (6)."""
    weekday = local.day_of_week.to_numpy(dtype=float)
    return np.where(_is_holiday(local, calendar) > 0, SUNDAY, weekday)


def _same_day_type_lag(
    history: pd.Series, local: pd.DatetimeIndex, day_lag: timedelta, calendar: frozenset[date]
) -> np.ndarray:
    """``y[t - k days]`` for the least ``k >= D / 1 day`` (up to two weeks further) whose day
    has ``t``'s day type: last Sunday's (or holiday's) value for a holiday, the same weekday's
    otherwise, skipping holidays. NaN when there is none."""
    wanted = _day_type(local, calendar)
    values = np.full(len(local), np.nan)
    for k in range(day_lag // DAY, day_lag // DAY + 2 * RECENT_DAYS):
        earlier = local - DAY * k
        lookup = history.reindex(earlier).to_numpy(dtype=float)
        fill = np.isnan(values) & (_day_type(earlier, calendar) == wanted) & ~np.isnan(lookup)
        values[fill] = lookup[fill]
    return values


def _mean_of_daily_lags(
    history: pd.Series, times: pd.DatetimeIndex, day_lag: timedelta
) -> np.ndarray:
    """``mean_k y[t - D - k days]`` over ``k = 0 .. 6`` (the observed ones): the same time of
    day over the latest week the forecast may see, less noisy than ``y[t - D]`` alone."""
    lagged = [
        history.reindex(times - day_lag - DAY * k).to_numpy(dtype=float) for k in range(RECENT_DAYS)
    ]
    stacked = np.vstack(lagged)
    seen = ~np.isnan(stacked)
    total = np.where(seen, stacked, 0.0).sum(axis=0)
    count = seen.sum(axis=0)
    mean: np.ndarray = np.divide(total, count, out=np.full(len(times), np.nan), where=count > 0)
    return mean


def _fit_predict(train: np.ndarray, target: np.ndarray, future: np.ndarray, q: float) -> np.ndarray:
    """One quantile regressor, fitted on ``(train, target)``, predicting ``future``."""
    data = lightgbm.Dataset(train, label=target, feature_name=list(FEATURES), free_raw_data=True)
    booster = lightgbm.train({**PARAMS, "alpha": q}, data, num_boost_round=ROUNDS)
    return np.asarray(booster.predict(future), dtype=float)


# -- holidays ----------------------------------------------------------------------------------


def _holiday_calendar(
    country: str | None, extra: Collection[date], first: pd.Timestamp, last: pd.Timestamp
) -> frozenset[date]:
    """The holiday dates between ``first`` and ``last``: ``country``'s and ``extra``."""
    days = {_as_date(d, "holidays") for d in extra}
    if country is not None:
        years = range(first.year, last.year + 1)
        try:
            table = holidays_package.country_holidays(country, years=years)
        except NotImplementedError as err:  # the package's "unknown country"
            raise RequestValidationError.single(
                "country", f"{country!r} is not a country the holidays package knows ({err})"
            ) from err
        days.update(table.keys())
    return frozenset(days)


def _as_date(value: object, field: str) -> date:
    if isinstance(value, datetime):
        raise RequestValidationError.single(field, f"give dates, not date-times ({value})")
    if not isinstance(value, date):
        raise RequestValidationError.single(field, f"{value!r} is not a date")
    return value


def _is_holiday(local: pd.DatetimeIndex, calendar: frozenset[date]) -> np.ndarray:
    """1.0 where the local date is in ``calendar``, else 0.0 (compared as numpy days)."""
    if not calendar:
        return np.zeros(len(local))
    days = local.tz_localize(None).to_numpy().astype("datetime64[D]")
    listed = np.array(sorted(calendar), dtype="datetime64[D]")
    return np.isin(days, listed).astype(float)


# -- the baseline ------------------------------------------------------------------------------


def seasonal_naive(
    history: pd.Series,
    *,
    start: datetime,
    steps: int,
    resolution: timedelta,
    coverage: float = 0.8,
    season: timedelta = DAY,
) -> Forecast:
    """The value one season back: ``mean[t] = y[t - k S]`` with ``S = season`` and ``k`` the
    least whole number of seasons that lands on an observed (not NaN) value.

    Interval: ``mean[t] + Q(q_lo)`` to ``mean[t] + Q(q_hi)``, where ``Q`` is the empirical
    quantile (linear interpolation, numpy's default) of the in-sample seasonal differences
    ``e[u] = y[u] - y[u - S]`` and ``q_lo, q_hi = (1 -+ coverage) / 2``.
    """
    _check_coverage(coverage)
    _check_history(history, resolution)
    _check_season(season, resolution)
    index = _future_index(history, start, steps, resolution)
    residuals = (history - history.shift(freq=season).reindex(history.index)).dropna()
    if residuals.empty:
        raise RequestValidationError.single(
            "history",
            f"too short: the seasonal-naive forecast needs two observed values one season "
            f"({_days(season)}) apart",
        )
    mean = repeat_season(history, index, season)
    low, high = np.quantile(residuals.to_numpy(), [(1 - coverage) / 2, (1 + coverage) / 2])
    return Forecast(index, mean, mean + low, mean + high, NAIVE, coverage)


def repeat_season(history: pd.Series, index: pd.DatetimeIndex, season: timedelta) -> np.ndarray:
    """``y[t - k S]`` for the least ``k`` that reaches into the history with a value."""
    own = np.maximum(1, np.ceil((index - history.index[-1]) / season)).astype(int)
    values = np.full(len(index), np.nan)
    k = 1
    while np.isnan(values).any() and (index - season * k).max() >= history.index[0]:
        lookup = history.reindex(index - season * k).to_numpy(dtype=float)
        fill = np.isnan(values) & (k >= own) & ~np.isnan(lookup)
        values[fill] = lookup[fill]
        k += 1
    if np.isnan(values).any():
        first = index[np.isnan(values)][0]
        raise RequestValidationError.single(
            "history", f"has no value a whole number of seasons before {first.isoformat()}"
        )
    return values


# -- scores and backtest -----------------------------------------------------------------------


def evaluate(actual: pd.Series | np.ndarray, prediction: Forecast) -> Scores:
    """MAE, RMSE and coverage (see :class:`Scores`) of ``prediction`` against ``actual``
    (aligned on the forecast's index when a Series); steps where ``actual`` is NaN are not
    scored."""
    if isinstance(actual, pd.Series):
        values = actual.reindex(prediction.index).to_numpy(dtype=float)
    else:
        values = np.asarray(actual, dtype=float)
    if values.shape != prediction.mean.shape:
        raise RequestValidationError.single(
            "actual", f"has {values.size} values for {prediction.mean.size} forecast steps"
        )
    seen = ~np.isnan(values)
    if not seen.any():
        raise RequestValidationError.single("actual", "has no observed value to score")
    error = values[seen] - prediction.mean[seen]
    inside = (prediction.lower[seen] <= values[seen]) & (values[seen] <= prediction.upper[seen])
    return Scores(
        mae=float(np.mean(np.abs(error))),
        rmse=float(np.sqrt(np.mean(error**2))),
        coverage=float(np.mean(inside)),
        n=int(seen.sum()),
    )


def backtest(
    series: pd.Series,
    *,
    horizon: timedelta,
    folds: int,
    step: timedelta | None = None,
    coverage: float = 0.8,
    country: str | None = None,
    holidays: Collection[date] = (),
    season: timedelta = DAY,
) -> Backtest:
    """Rolling-origin backtest of :func:`forecast` against :func:`seasonal_naive`.

    ``folds`` origins ``step`` apart (default: ``horizon``, so the folds tile the end of the
    series), the last one ``horizon`` before the series ends. At each origin both models see
    only ``series`` before it and forecast the next ``horizon``; the scores pool every
    forecast step of every fold (see :class:`Scores`).
    """
    resolution = _check_history(series, None)
    _check_horizon(horizon, resolution)
    step = horizon if step is None else step
    _check_step(step, resolution)
    if folds < 1:
        raise RequestValidationError.single("folds", f"must be at least 1, not {folds}")
    steps = horizon // resolution
    end = series.index[-1] + resolution
    origins = [end - horizon - step * (folds - 1 - i) for i in range(folds)]
    if origins[0] <= series.index[0]:
        raise RequestValidationError.single(
            "folds", f"{folds} folds {_days(step)} apart leave no history before the first"
        )
    pairs = [
        _fold(series, o, steps, resolution, coverage, country, holidays, season) for o in origins
    ]
    actual = np.concatenate([series.reindex(p[0].index).to_numpy(dtype=float) for p in pairs])
    return Backtest(
        model=evaluate(actual, _concat([p[0] for p in pairs])),
        naive=evaluate(actual, _concat([p[1] for p in pairs])),
        origins=tuple(origins),
        horizon=horizon,
        coverage=coverage,
    )


def _fold(
    series: pd.Series,
    origin: pd.Timestamp,
    steps: int,
    resolution: timedelta,
    coverage: float,
    country: str | None,
    holidays: Collection[date],
    season: timedelta,
) -> tuple[Forecast, Forecast]:
    """The model's and the baseline's forecast from ``origin``, trained before it."""
    history = series[series.index < origin]
    model = forecast(
        history,
        start=origin,
        steps=steps,
        resolution=resolution,
        coverage=coverage,
        country=country,
        holidays=holidays,
    )
    naive = seasonal_naive(
        history, start=origin, steps=steps, resolution=resolution, coverage=coverage, season=season
    )
    return model, naive


def _concat(parts: list[Forecast]) -> Forecast:
    first = parts[0]
    return Forecast(
        pd.DatetimeIndex(np.concatenate([p.index for p in parts])),
        np.concatenate([p.mean for p in parts]),
        np.concatenate([p.lower for p in parts]),
        np.concatenate([p.upper for p in parts]),
        first.model,
        first.coverage,
    )


# -- validation --------------------------------------------------------------------------------


def _check_history(history: object, resolution: timedelta | None) -> timedelta:
    """The history is a numeric Series on a regular, tz-aware index of step ``resolution``
    (when given) with at least one value: the step, or a domain error naming the argument."""
    if not isinstance(history, pd.Series):
        raise RequestValidationError.single("history", "must be a pandas Series")
    index = history.index
    if not isinstance(index, pd.DatetimeIndex) or index.tz is None:
        raise RequestValidationError.single("history", "needs a timezone-aware DatetimeIndex")
    if len(index) < 2:
        raise RequestValidationError.single("history", f"has {len(index)} values; too few")
    if not pd.api.types.is_numeric_dtype(history.dtype):
        raise RequestValidationError.single(
            "history", f"values must be numbers, not {history.dtype}"
        )
    gaps = np.unique(np.diff(index.asi8))
    if len(gaps) != 1 or gaps[0] <= 0:
        raise RequestValidationError.single(
            "history", "index must be regular and increasing (put NaN where a value is missing)"
        )
    step = pd.Timedelta(index[1] - index[0]).to_pytimedelta()
    if resolution is not None:
        _check_resolution(resolution)
        if step != resolution:
            raise RequestValidationError.single(
                "resolution", f"{resolution} is not the history's step ({step})"
            )
    if history.isna().all():
        raise RequestValidationError.single("history", "has no value (all NaN)")
    if np.isinf(history.to_numpy(dtype=float)).any():
        raise RequestValidationError.single("history", "has infinite values")
    return step


def _check_resolution(resolution: object) -> None:
    if not isinstance(resolution, timedelta) or resolution <= timedelta(0):
        raise RequestValidationError.single("resolution", "must be a positive timedelta")
    if DAY % resolution:
        raise RequestValidationError.single(
            "resolution", f"{resolution} does not divide a day into whole steps"
        )


def _future_index(
    history: pd.Series, start: datetime, steps: int, resolution: timedelta
) -> pd.DatetimeIndex:
    """The forecast's steps: ``steps`` from ``start``, after the history, on its grid."""
    if not isinstance(start, datetime) or start.tzinfo is None:
        raise RequestValidationError.single("start", "must be a timezone-aware datetime")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise RequestValidationError.single("steps", f"must be a whole number >= 1, not {steps}")
    last = history.index[-1]
    if start <= last:
        raise RequestValidationError.single(
            "start", f"{start.isoformat()} is not after the history's last step {last}"
        )
    if (pd.Timestamp(start) - last) % resolution:
        raise RequestValidationError.single(
            "start", f"{start.isoformat()} is not on the history's grid of {resolution}"
        )
    index = pd.date_range(pd.Timestamp(start), periods=steps, freq=pd.Timedelta(resolution))
    return index.tz_convert(history.index.tz).as_unit("ns")  # type: ignore[attr-defined]


def _check_coverage(coverage: float) -> None:
    if isinstance(coverage, bool) or not isinstance(coverage, int | float):
        raise RequestValidationError.single("coverage", "must be a number in (0, 1)")
    if not 0 < coverage < 1:
        raise RequestValidationError.single("coverage", f"must be in (0, 1), not {coverage}")


def _check_season(season: timedelta, resolution: timedelta) -> None:
    if not isinstance(season, timedelta) or season <= timedelta(0) or season % resolution:
        raise RequestValidationError.single(
            "season", f"must be a positive whole number of steps of {resolution}"
        )


def _check_horizon(horizon: timedelta, resolution: timedelta) -> None:
    if not isinstance(horizon, timedelta) or horizon < resolution or horizon % resolution:
        raise RequestValidationError.single(
            "horizon", f"must be a positive whole number of steps of {resolution}"
        )


def _check_step(step: timedelta, resolution: timedelta) -> None:
    if not isinstance(step, timedelta) or step < resolution or step % resolution:
        raise RequestValidationError.single(
            "step", f"must be a positive whole number of steps of {resolution}"
        )


def _steps_per(span: timedelta, index: pd.DatetimeIndex) -> int:
    return int(span // (index[1] - index[0]))


def _days(span: timedelta) -> str:
    return f"{pd.Timedelta(span).total_seconds() / 86400:g} days"
