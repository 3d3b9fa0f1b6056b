"""Forecasts (issue 14 item 1) against independent references.

- The seasonal-naive baseline and its MAE, RMSE and coverage on a nine-value series, derived
  by hand in the docstring of the test.
- The backtest's baseline scores against a seasonal-naive rebuilt here with plain numpy.
- The model against the baseline: on a noisy synthetic series it can learn (a daily profile,
  quieter weekends, noise), and on the real PV series of pvlib's TMY3 weather.
- Holidays: with holidays in the history behaving differently, naming a day a holiday
  changes its forecast toward the holiday level; ``country`` equals the same dates by hand.
- Every bad input is a RequestValidationError naming its argument; every optional argument
  absent and present.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from api.cli import main
from vpp.errors import RequestValidationError
from vpp.forecast import (
    MODEL,
    NAIVE,
    Backtest,
    Forecast,
    backtest,
    evaluate,
    forecast,
    seasonal_naive,
)
from vpp.solar import TMY3_FILES, pv_power

DOC = Path(__file__).resolve().parent.parent / "docs" / "forecasting.md"
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
T0 = datetime(2025, 3, 3, tzinfo=UTC)  # a Monday


def hourly(values: Any, start: datetime = T0) -> pd.Series:
    values = np.asarray(values, dtype=float)
    return pd.Series(values, index=pd.date_range(start, periods=len(values), freq="h"))


def learnable(days: int = 70, noise: float = 0.3, seed: int = 1) -> pd.Series:
    """A load-like series: a daily profile 1 + sin, 40 % lower on weekends, plus noise."""
    index = pd.date_range(T0, periods=24 * days, freq="h")
    hour = index.hour.to_numpy()
    weekend = index.day_of_week.to_numpy() >= 5
    profile = 2.0 + np.sin(2 * np.pi * (hour - 6) / 24)
    level = np.where(weekend, 0.6, 1.0)
    rng = np.random.default_rng(seed)
    return pd.Series(profile * level + rng.normal(0.0, noise, len(index)), index=index)


def field_of(info: pytest.ExceptionInfo[RequestValidationError]) -> str:
    return info.value.issues[0].field


# -- the baseline by hand -----------------------------------------------------------------------


def test_seasonal_naive_and_its_scores_by_hand() -> None:
    """y = 1 2 3 2 4 3 3 3 5 at 00:00..08:00, season 3 h, coverage 0.5, four steps from 09:00.

    Means: 09, 10, 11 -> y(06, 07, 08) = 3, 3, 5; 12:00 is 4 h after 08:00, so two seasons
    back: y(06) = 3. Seasonal differences y(u) - y(u - 3 h), u = 03..08: 1 2 0 1 -1 2, sorted
    -1 0 1 1 2 2; their 25 % quantile (position 5 * 0.25 = 1.25) is 0 + 0.25 * 1 = 0.25,
    the 75 % one (position 3.75) 1 + 0.75 * 1 = 1.75. So lower = mean + 0.25, upper = mean +
    1.75.

    Against actual 4 2 6 5: errors 1 -1 1 2, MAE = 5/4 = 1.25, RMSE = sqrt(7/4); inside: 4 in
    [3.25, 4.75] yes, 2 no, 6 in [5.25, 6.75] yes, 5 no: coverage 1/2.
    """
    history = hourly([1, 2, 3, 2, 4, 3, 3, 3, 5])
    start = T0 + 9 * HOUR
    got = seasonal_naive(
        history, start=start, steps=4, resolution=HOUR, coverage=0.5, season=3 * HOUR
    )
    assert list(got.index) == [start + k * HOUR for k in range(4)]
    assert got.mean == pytest.approx([3, 3, 5, 3])
    assert got.lower == pytest.approx([3.25, 3.25, 5.25, 3.25])
    assert got.upper == pytest.approx([4.75, 4.75, 6.75, 4.75])
    assert (got.model, got.coverage) == (NAIVE, 0.5)
    scores = evaluate(pd.Series([4.0, 2, 6, 5], index=got.index), got)
    assert scores.mae == pytest.approx(1.25)
    assert scores.rmse == pytest.approx(math.sqrt(7 / 4))
    assert scores.coverage == pytest.approx(0.5)
    assert scores.n == 4
    # an array works as well as a Series; NaN steps are not scored
    assert evaluate(np.array([4.0, np.nan, 6, 5]), got).mae == pytest.approx(4 / 3)


def test_seasonal_naive_skips_a_missing_value_one_season_back() -> None:
    """y(06:00) missing: 09:00 takes two seasons back, y(03:00) = 2; the differences lose
    the one that involves y(06): 1 2 0 -1 2 remain, median 1, so the interval of a tiny
    coverage is 2 + 1 = 3 at both ends."""
    history = hourly([1, 2, 3, 2, 4, 3, np.nan, 3, 5])
    got = seasonal_naive(
        history, start=T0 + 9 * HOUR, steps=1, resolution=HOUR, coverage=1e-9, season=3 * HOUR
    )
    assert got.mean == pytest.approx([2.0])
    assert got.lower == pytest.approx([3.0]) and got.upper == pytest.approx([3.0])


def test_seasonal_naive_default_season_is_a_day() -> None:
    history = hourly(np.arange(48.0))
    got = seasonal_naive(history, start=T0 + 48 * HOUR, steps=30, resolution=HOUR)
    # 24 steps one day back, then two days back (the value one day back is not observed):
    # 72:00 -> 24:00 ... 77:00 -> 29:00
    assert got.mean == pytest.approx([*range(24, 48), *range(24, 30)])
    assert got.upper - got.mean == pytest.approx(np.full(30, 24.0))  # every difference is 24
    assert got.coverage == 0.8


def test_backtest_baseline_matches_a_seasonal_naive_built_here() -> None:
    series = learnable(days=30)
    result = backtest(series, horizon=DAY, folds=5, step=2 * DAY, coverage=0.8)
    values = series.to_numpy()
    ends = len(values) - np.arange(5)[::-1] * 48  # each fold's end (exclusive), in steps
    errors, inside = [], []
    for end in ends:
        origin = end - 24
        past = values[:origin]
        diffs = past[24:] - past[:-24]
        low, high = np.quantile(diffs, [0.1, 0.9])
        guess = past[origin - 24 : origin]  # a day back, every step within a day
        actual = values[origin:end]
        errors.append(actual - guess)
        inside.append((guess + low <= actual) & (actual <= guess + high))
    e = np.concatenate(errors)
    assert result.naive.mae == pytest.approx(np.mean(np.abs(e)))
    assert result.naive.rmse == pytest.approx(np.sqrt(np.mean(e**2)))
    assert result.naive.coverage == pytest.approx(np.mean(np.concatenate(inside)))
    assert result.naive.n == result.model.n == 5 * 24
    assert list(result.origins) == [series.index[e - 24] for e in ends]
    assert result.horizon == DAY and result.coverage == 0.8


# -- the model ----------------------------------------------------------------------------------


def test_the_model_beats_seasonal_naive_on_a_learnable_noisy_series() -> None:
    """Yesterday's value carries yesterday's noise and misses every weekend edge; the model
    averages the noise away and knows the weekday."""
    result = backtest(learnable(), horizon=DAY, folds=14, step=DAY)
    assert result.model.mae < 0.75 * result.naive.mae
    assert result.model.rmse < 0.75 * result.naive.rmse
    assert result.mae_skill == pytest.approx(1 - result.model.mae / result.naive.mae)
    # in-sample quantile trees run a little narrow on six weeks of noise (about 72 % here)
    assert abs(result.model.coverage - 0.8) < 0.15


@pytest.fixture(scope="module")
def pv_backtest() -> Backtest:
    """The backtest of docs/benchmarks.md's first row: 48 day-ahead folds a week apart."""
    return backtest(pv_power(), horizon=DAY, folds=48, step=7 * DAY)


def test_the_model_beats_seasonal_naive_on_pvlib_pv(pv_backtest: Backtest) -> None:
    assert pv_backtest.model.mae < pv_backtest.naive.mae
    assert pv_backtest.model.rmse < 0.95 * pv_backtest.naive.rmse
    assert abs(pv_backtest.model.coverage - 0.8) < 0.1
    assert pv_backtest.model.n == pv_backtest.naive.n == 48 * 24


def test_the_pv_series_is_a_plausible_5_kwp_year() -> None:
    """Greensboro, NC: PVWatts puts a south-facing, 30 deg array at about 1,400 kWh/kWp a
    year; the AC power never exceeds the inverter's 5 kW and is 0 at midnight."""
    pv = pv_power()
    assert len(pv) == 8760 and pv.index[0] == pd.Timestamp("2021-01-01T00:00-05:00")
    assert 1200 < pv.sum() / 5 < 1600
    assert pv.max() <= 5.0 and pv.min() == 0.0
    assert (pv[pv.index.hour == 0] == 0).all()
    assert pv_power(kwp=10.0).sum() == pytest.approx(2 * pv.sum(), rel=0.01)
    assert set(TMY3_FILES) == {"723170TYA.CSV", "703165TY.csv"}
    assert 0 < pv_power("703165TY.csv").sum() < pv.sum()  # Alaska's Aleutians: cloudier, north


def test_intervals_contain_the_median_and_the_median_is_near_the_truth() -> None:
    series = learnable(days=28)
    history, future = series.iloc[:-48], series.iloc[-48:]
    for coverage in (0.01, 0.5, 0.8, 0.98):
        got = forecast(history, start=future.index[0], steps=48, resolution=HOUR, coverage=coverage)
        assert (got.lower <= got.mean).all() and (got.mean <= got.upper).all()
        assert got.coverage == coverage and got.model == MODEL
    assert evaluate(future, got).mae < 0.4  # noise 0.3: its MAE alone is 0.24
    wide = forecast(history, start=future.index[0], steps=48, resolution=HOUR, coverage=0.98)
    narrow = forecast(history, start=future.index[0], steps=48, resolution=HOUR, coverage=0.5)
    assert np.mean(wide.upper - wide.lower) > np.mean(narrow.upper - narrow.lower)


def test_the_forecast_is_deterministic() -> None:
    series = learnable(days=21)
    a = forecast(series, start=series.index[-1] + HOUR, steps=24, resolution=HOUR)
    b = forecast(series, start=series.index[-1] + HOUR, steps=24, resolution=HOUR)
    assert np.array_equal(a.mean, b.mean) and np.array_equal(a.upper, b.upper)


def test_a_forecast_beyond_a_week_and_after_a_gap_is_direct() -> None:
    """Ten days ahead, starting two days after the history: the lags go back two weeks and
    eleven days, every step gets a finite value, and the weekly shape survives."""
    series = learnable(days=42, noise=0.05)
    start = series.index[-1] + HOUR + 2 * DAY
    got = forecast(series, start=start, steps=240, resolution=HOUR)
    assert np.isfinite(got.mean).all()
    truth = learnable(days=54, noise=0.0).reindex(got.index)
    assert evaluate(truth, got).mae < 0.15


def test_missing_values_in_the_history_are_skipped() -> None:
    series = learnable(days=21)
    series.iloc[100:130] = np.nan
    series.iloc[-5] = np.nan
    got = forecast(series, start=series.index[-1] + HOUR, steps=24, resolution=HOUR)
    assert np.isfinite(got.mean).all()


def test_quarter_hours_and_another_timezone() -> None:
    index = pd.date_range("2025-03-03", periods=96 * 14, freq="15min", tz="Europe/Amsterdam")
    minutes = (index.hour * 60 + index.minute).to_numpy()
    series = pd.Series(np.sin(2 * np.pi * minutes / 1440), index=index)
    got = forecast(
        series, start=index[-1] + timedelta(minutes=15), steps=96, resolution=timedelta(minutes=15)
    )
    assert str(got.index.tz) == "Europe/Amsterdam"
    assert evaluate(series.shift(freq=timedelta(days=1)).reindex(got.index), got).mae < 0.05
    assert list(got.to_frame().columns) == ["mean", "lower", "upper"]


# -- holidays -----------------------------------------------------------------------------------

# weekdays, none a Wednesday: the model must learn "holiday", not "Wednesday"
HOLIDAYS = [date(2025, 3, 10), date(2025, 3, 18), date(2025, 3, 27), date(2025, 4, 4),
            date(2025, 4, 8), date(2025, 4, 14), date(2025, 4, 17), date(2025, 4, 24)]  # fmt: skip
TARGET_DAY = date(2025, 4, 30)  # a Wednesday


def with_holidays(days: list[date]) -> pd.Series:
    """The learnable series, with every holiday (weekday) at a fifth of its level."""
    series = learnable(days=60, noise=0.1)
    on_holiday = np.isin(series.index.date, days)
    return series.where(~on_holiday, series * 0.2)


def test_a_holiday_is_forecast_like_the_holidays_of_the_history() -> None:
    series = with_holidays([*HOLIDAYS, TARGET_DAY])
    start = pd.Timestamp(TARGET_DAY, tz=UTC)
    history = series[series.index < start]
    truth = series[start : start + timedelta(hours=23)]

    def day_ahead(**holidays: Any) -> Forecast:
        return forecast(history, start=start, steps=24, resolution=HOUR, **holidays)

    told = day_ahead(holidays=[*HOLIDAYS, TARGET_DAY])
    not_told = day_ahead(holidays=HOLIDAYS)
    no_holidays = day_ahead()
    assert told.mean.sum() < 0.5 * not_told.mean.sum()
    assert evaluate(truth, told).mae < 0.5 * evaluate(truth, not_told).mae
    assert no_holidays.mean.sum() > 2 * truth.sum()  # blind to holidays: a normal Wednesday


def test_country_holidays_equal_the_same_dates_given_by_hand() -> None:
    """The Netherlands' public holidays in spring 2025, written out here: Good Friday 18
    April, Easter 20 and 21 April, King's Day 26 April, Liberation Day 5 May (a lustrum
    year), Ascension 29 May. ``country="NL"`` gives the forecast of Ascension that these
    dates give by hand."""
    nl = [date(2025, 4, 18), date(2025, 4, 20), date(2025, 4, 21), date(2025, 4, 26),
          date(2025, 5, 5), date(2025, 5, 29)]  # fmt: skip
    series = with_holidays(nl)
    start = pd.Timestamp(date(2025, 5, 29), tz=UTC)
    history = series[series.index < start]
    by_country = forecast(history, start=start, steps=24, resolution=HOUR, country="NL")
    by_hand = forecast(history, start=start, steps=24, resolution=HOUR, holidays=nl)
    both = forecast(history, start=start, steps=24, resolution=HOUR, country="NL", holidays=nl)
    assert np.array_equal(by_country.mean, by_hand.mean)
    assert np.array_equal(both.mean, by_hand.mean)
    plain = forecast(history, start=start, steps=24, resolution=HOUR)
    assert by_country.mean.sum() < 0.7 * plain.mean.sum()


# -- bad input ---------------------------------------------------------------------------------


def good() -> dict[str, Any]:
    series = learnable(days=10)
    return {"history": series, "start": series.index[-1] + HOUR, "steps": 24,
            "resolution": HOUR}  # fmt: skip


def bad_cases() -> list[tuple[str, dict[str, Any], str]]:
    s = learnable(days=10)
    irregular = s.drop(s.index[50])
    return [
        ("not a series", {"history": s.to_numpy()}, "history"),
        ("naive index", {"history": s.tz_localize(None)}, "history"),
        ("integer index", {"history": s.reset_index(drop=True)}, "history"),
        ("irregular", {"history": irregular}, "history"),
        ("decreasing", {"history": s.iloc[::-1]}, "history"),
        ("all NaN", {"history": s * np.nan}, "history"),
        ("infinite", {"history": s.replace(s.iloc[3], np.inf)}, "history"),
        ("text", {"history": s.astype(str)}, "history"),
        ("one value", {"history": s.iloc[:1]}, "history"),
        ("a week", {"history": s.iloc[: 24 * 7], "start": s.index[24 * 7]}, "history"),
        ("other step", {"resolution": 2 * HOUR}, "resolution"),
        ("zero step", {"resolution": timedelta(0)}, "resolution"),
        ("7 h", {"resolution": 7 * HOUR}, "resolution"),
        ("start inside", {"start": s.index[-1]}, "start"),
        ("start off grid", {"start": s.index[-1] + timedelta(minutes=90)}, "start"),
        ("naive start", {"start": datetime(2026, 1, 1)}, "start"),
        ("no steps", {"steps": 0}, "steps"),
        ("float steps", {"steps": 2.5}, "steps"),
        ("coverage 1", {"coverage": 1.0}, "coverage"),
        ("coverage 0", {"coverage": 0}, "coverage"),
        ("coverage NaN", {"coverage": float("nan")}, "coverage"),
        ("coverage text", {"coverage": "0.8"}, "coverage"),
        ("unknown country", {"country": "XX"}, "country"),
        ("holiday datetime", {"holidays": [datetime(2025, 3, 5)]}, "holidays"),
        ("holiday text", {"holidays": ["2025-03-05"]}, "holidays"),
    ]


@pytest.mark.parametrize(("case", "change", "field"), bad_cases(), ids=lambda c: str(c)[:20])
def test_bad_input_names_the_argument(case: str, change: dict[str, Any], field: str) -> None:
    with pytest.raises(RequestValidationError) as info:
        forecast(**{**good(), **change})
    assert field_of(info) == field, info.value.message


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"season": timedelta(minutes=90)}, "season"),
        ({"season": timedelta(0)}, "season"),
        ({"season": 400 * DAY}, "history"),  # no pair of values a season apart
        ({"coverage": 1.5}, "coverage"),
        ({"steps": -1}, "steps"),
    ],
)
def test_bad_baseline_input_names_the_argument(change: dict[str, Any], field: str) -> None:
    with pytest.raises(RequestValidationError) as info:
        seasonal_naive(**{**good(), **change})
    assert field_of(info) == field, info.value.message


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"horizon": timedelta(minutes=30)}, "horizon"),
        ({"horizon": 90 * timedelta(minutes=1)}, "horizon"),
        ({"step": timedelta(0)}, "step"),
        ({"folds": 0}, "folds"),
        ({"folds": 30}, "folds"),  # the first origin before the series
        ({"folds": 5, "step": DAY}, "history"),  # the first origin 5 days in: too short
    ],
)
def test_bad_backtest_input_names_the_argument(change: dict[str, Any], field: str) -> None:
    arguments = {"horizon": DAY, "folds": 2, **change}
    with pytest.raises(RequestValidationError) as info:
        backtest(learnable(days=10), **arguments)
    assert field_of(info) == field, info.value.message


def test_evaluate_wants_one_actual_value_per_step() -> None:
    got = seasonal_naive(hourly(range(30)), start=T0 + 30 * HOUR, steps=3, resolution=HOUR)
    with pytest.raises(RequestValidationError) as info:
        evaluate(np.zeros(4), got)
    assert field_of(info) == "actual"
    with pytest.raises(RequestValidationError) as info:
        evaluate(np.full(3, np.nan), got)
    assert field_of(info) == "actual"


def test_bad_pv_input_names_the_argument() -> None:
    with pytest.raises(RequestValidationError) as info:
        pv_power("nope.csv")
    assert field_of(info) == "file"
    with pytest.raises(RequestValidationError) as info:
        pv_power(kwp=0.0)
    assert field_of(info) == "kwp"


# -- optional arguments ------------------------------------------------------------------------


def test_every_optional_argument_absent_takes_its_documented_default() -> None:
    series = learnable(days=21)
    start = series.index[-1] + HOUR
    bare = forecast(series, start=start, steps=24, resolution=HOUR)
    spelled = forecast(
        series, start=start, steps=24, resolution=HOUR, coverage=0.8, country=None, holidays=()
    )
    assert bare.coverage == 0.8
    assert np.array_equal(bare.mean, spelled.mean) and np.array_equal(bare.lower, spelled.lower)
    # no holiday in the history or the horizon: a country changes nothing
    quiet = forecast(series, start=start, steps=24, resolution=HOUR, country="NL", holidays=[])
    assert np.array_equal(bare.mean, quiet.mean)
    naive = seasonal_naive(series, start=start, steps=24, resolution=HOUR)
    day = seasonal_naive(series, start=start, steps=24, resolution=HOUR, coverage=0.8, season=DAY)
    assert np.array_equal(naive.mean, day.mean) and naive.coverage == 0.8
    two_days = seasonal_naive(series, start=start, steps=24, resolution=HOUR, season=2 * DAY)
    assert two_days.mean == pytest.approx(series.iloc[-48:-24].to_numpy())
    tiled = backtest(series, horizon=DAY, folds=3)
    assert [o - tiled.origins[0] for o in tiled.origins] == [0 * DAY, DAY, 2 * DAY]
    assert tiled.coverage == 0.8
    wider = backtest(series, horizon=DAY, folds=2, step=3 * DAY, coverage=0.95, country="NL",
                     holidays=[date(2025, 3, 20)], season=7 * DAY)  # fmt: skip
    assert wider.origins[1] - wider.origins[0] == 3 * DAY and wider.coverage == 0.95


# -- the command -------------------------------------------------------------------------------


def test_vpp_forecast_backtest_on_a_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    series = learnable(days=21)
    csv = tmp_path / "load.csv"
    csv.write_text("time,kw\n" + "".join(f"{t.isoformat()},{v}\n" for t, v in series.items()))
    assert main(["forecast", "backtest", "--csv", str(csv), "--folds", "3", "--step", "24"]) == 0
    out = capsys.readouterr().out
    expected = backtest(series, horizon=DAY, folds=3, step=DAY)
    assert f"{MODEL:<20}{expected.model.mae:>10.4f}{expected.model.rmse:>10.4f}" in out
    assert f"{NAIVE:<20}{expected.naive.mae:>10.4f}{expected.naive.rmse:>10.4f}" in out
    assert "3 origins every 24 h" in out
    argv = ["forecast", "backtest", "--csv", str(csv), "--folds", "2", "--json", "--country", "NL"]
    assert main(argv) == 0
    scores = json.loads(capsys.readouterr().out)
    assert scores["folds"] == 2 and set(scores) == {"data", "folds", MODEL, NAIVE}
    assert scores[NAIVE]["n"] == 48


def test_vpp_forecast_backtest_refuses_bad_input_by_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing.csv"
    assert main(["forecast", "backtest", "--csv", str(missing)]) == 2
    assert capsys.readouterr().err.startswith("error: csv: cannot read")
    three = tmp_path / "three.csv"
    three.write_text("2025-03-03T00:00+00:00,1,2\n")
    assert main(["forecast", "backtest", "--csv", str(three)]) == 2
    assert "error: csv: needs two columns" in capsys.readouterr().err
    assert main(["forecast", "backtest", "--coverage", "2"]) == 2
    assert "error: coverage: must be in (0, 1)" in capsys.readouterr().err


# -- the worked examples of docs/forecasting.md ------------------------------------------------


def doc_examples() -> list[tuple[str, str]]:
    """Each python block of docs/forecasting.md with the output block after it."""
    text = DOC.read_text(encoding="utf-8")
    return re.findall(r"```python\n(.*?)```\n.*?```\n(.*?)```", text, flags=re.DOTALL)


@pytest.mark.parametrize("index", [0, 1])
def test_the_worked_examples_print_what_the_doc_says(index: int) -> None:
    code, expected = doc_examples()[index]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, f"docs/forecasting.md example {index}", "exec"), {})
    assert printed.getvalue() == expected


def test_the_doc_shows_the_backtest_command_output(pv_backtest: Backtest) -> None:
    """The figures of `vpp forecast backtest` quoted in the doc are what the library gives
    for the same backtest (the command itself runs in test_vpp_forecast_backtest_on_a_csv)."""
    text = DOC.read_text(encoding="utf-8")
    for name, s in ((MODEL, pv_backtest.model), (NAIVE, pv_backtest.naive)):
        row = f"{name:<20}{s.mae:>10.4f}{s.rmse:>10.4f}{s.coverage:>10.1%}{s.n:>8d}"
        assert row in text


def test_pv_power_optional_arguments() -> None:
    """Absent: 723170TYA.CSV, 5 kWp, 30 deg, south, 2021. A flat array yields less than a
    tilted one at 36 N, a north-facing one far less; the year only relabels the index."""
    default = pv_power()
    spelled = pv_power("723170TYA.CSV", kwp=5.0, tilt=30.0, azimuth=180.0, year=2021)
    assert default.equals(spelled)
    assert pv_power(tilt=0.0).sum() < default.sum()
    assert pv_power(azimuth=0.0).sum() < 0.8 * default.sum()
    later = pv_power(year=2023)
    assert later.index[0] == pd.Timestamp("2023-01-01T00:00-05:00")
    assert later.to_numpy() == pytest.approx(default.to_numpy(), abs=0.05)
