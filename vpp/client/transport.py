"""The transports: :class:`Client` over ``httpx.Client``, :class:`AsyncClient` over
``httpx.AsyncClient``. The only module of vpp that imports httpx.

Each is a driver of the operations in :mod:`vpp.client.operations`: :func:`run` (or
:func:`run_async`) performs the effects an operation yields (an HTTP call, a sleep, the
clock) and sends back the answers. Every method is one line: ``me = _sync(operations.me)``.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import IO, Any, Concatenate, ParamSpec, TypeVar

import httpx
import pandas as pd

from vpp.client import operations as ops
from vpp.client.errors import ApiConnectionError
from vpp.client.protocol import (
    Call,
    Effect,
    Now,
    Op,
    Request,
    Response,
    Sleep,
    base_url,
    decode,
    request_of,
    session_headers,
)
from vpp.client.scenarios import Scenario
from vpp.settings import get_settings

__all__ = ["DEFAULT_URL", "AsyncClient", "Client", "run", "run_async", "what_if"]

P = ParamSpec("P")
T = TypeVar("T")

DEFAULT_URL = "http://127.0.0.1:8000"


# -- the drivers ------------------------------------------------------------------------------
def run(op: Op[T], perform: Callable[[Effect], Any]) -> T:
    """Drive an operation: perform each effect it yields, send back the answer (or throw the
    error into it, so it may clean up or handle it), until it returns."""
    answer: Any = None
    failure: BaseException | None = None
    while True:
        try:
            effect = op.throw(failure) if failure is not None else op.send(answer)
        except StopIteration as stop:
            result: T = stop.value
            return result
        answer, failure = None, None
        try:
            answer = perform(effect)
        except BaseException as err:  # handed to the operation, which re-raises or handles it
            failure = err


async def run_async(op: Op[T], perform: Callable[[Effect], Awaitable[Any]]) -> T:
    """:func:`run` with an awaitable ``perform``."""
    answer: Any = None
    failure: BaseException | None = None
    while True:
        try:
            effect = op.throw(failure) if failure is not None else op.send(answer)
        except StopIteration as stop:
            result: T = stop.value
            return result
        answer, failure = None, None
        try:
            answer = await perform(effect)
        except BaseException as err:  # handed to the operation, which re-raises or handles it
            failure = err


# -- httpx at the edges -----------------------------------------------------------------------
def _httpx_request(http: httpx.Client | httpx.AsyncClient, request: Request) -> httpx.Request:
    return http.build_request(
        request.method,
        request.path,
        params=dict(request.params) or None,
        headers=dict(request.headers) or None,
        content=request.content,
    )


def _response(response: httpx.Response) -> Response:
    return Response(
        status=response.status_code,
        reason=response.reason_phrase,
        headers=dict(response.headers),
        content=response.content,
        method=response.request.method,
        url=str(response.request.url),
    )


def _unreachable(err: httpx.TransportError, call: Call, url: str) -> ApiConnectionError:
    what = "did not answer in time" if isinstance(err, httpx.TimeoutException) else "is unreachable"
    return ApiConnectionError(
        f"{call.method} {call.path}: the vpp API at {url} {what} ({type(err).__name__}: "
        f"{err}); is `vpp serve` running there?"
    )


def _session(url: str | None, token: str | None) -> tuple[str, dict[str, str]]:
    """The base URL and headers: ``url`` and ``token`` default to ``VPP_URL`` and
    ``VPP_TOKEN`` (:mod:`vpp.settings`), the URL then to 127.0.0.1:8000."""
    settings = get_settings()
    root = base_url(url if url is not None else settings.url or DEFAULT_URL)
    return root, session_headers(token if token is not None else settings.token)


# -- one line per method ----------------------------------------------------------------------
def _describe(method: Callable[..., Any], op: Callable[..., Any]) -> None:
    """Give ``method`` the name, documentation and signature (with ``self``) of ``op``."""
    functools.update_wrapper(method, op, updated=())
    del method.__wrapped__  # type: ignore[attr-defined]  # set by update_wrapper
    signature = inspect.signature(op)
    this = inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY)
    method.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[this, *signature.parameters.values()],
        return_annotation=signature.return_annotation.removeprefix("Op[").removesuffix("]"),
    )


def _sync(op: Callable[P, Op[T]]) -> Callable[Concatenate[Client, P], T]:
    def method(self: Client, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return run(op(*args, **kwargs), self._perform)

    _describe(method, op)
    return method


def _async(op: Callable[P, Op[T]]) -> Callable[Concatenate[AsyncClient, P], Awaitable[T]]:
    async def method(self: AsyncClient, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await run_async(op(*args, **kwargs), self._perform)

    _describe(method, op)
    return method


class Client:
    """The vpp REST API over ``httpx.Client``.

    ``base_url`` (``$VPP_URL``, else 127.0.0.1:8000) may end in ``/api/v1`` or not; ``token``
    defaults to ``$VPP_TOKEN``. ``transport`` is handed to httpx (e.g. an
    ``httpx.MockTransport`` in tests). Use it as a context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        base_url: str | None = None,
        token: str | None = None,
        timeout: float = 30,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url, headers = _session(base_url, token)
        self._http = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=timeout, transport=transport
        )
        self._sleep: Callable[[float], None] = time.sleep
        self._clock: Callable[[], float] = time.monotonic

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def __repr__(self) -> str:
        return f"Client({self.base_url!r})"

    def _perform(self, effect: Effect) -> Any:
        if isinstance(effect, Sleep):
            return self._sleep(effect.seconds)
        if isinstance(effect, Now):
            return self._clock()
        request = _httpx_request(self._http, request_of(effect))
        try:
            response = self._http.send(request)
        except httpx.TransportError as err:
            raise _unreachable(err, effect, self.base_url) from err
        return decode(effect, _response(response))

    me = _sync(ops.me)
    create_site = _sync(ops.create_site)
    sites = _sync(ops.sites)
    site = _sync(ops.site)
    delete_site = _sync(ops.delete_site)
    create_portfolio = _sync(ops.create_portfolio)
    portfolios = _sync(ops.portfolios)
    portfolio = _sync(ops.portfolio)
    create_sensor = _sync(ops.create_sensor)
    sensors = _sync(ops.sensors)
    upload_series = _sync(ops.upload_series)
    series = _sync(ops.series)
    submit = _sync(ops.submit)
    job = _sync(ops.job)
    jobs = _sync(ops.jobs)
    cancel = _sync(ops.cancel)
    wait = _sync(ops.wait)
    schedule = _sync(ops.schedule)
    what_if = _sync(ops.what_if)
    gopacs_redispatch_bid = _sync(ops.gopacs_redispatch_bid)
    uftp_participants = _sync(ops.uftp_participants)
    add_uftp_participant = _sync(ops.add_uftp_participant)
    delete_uftp_participant = _sync(ops.delete_uftp_participant)
    uftp_messages = _sync(ops.uftp_messages)
    flex_offers = _sync(ops.flex_offers)
    revoke_flex_offer = _sync(ops.revoke_flex_offer)
    commitments = _sync(ops.commitments)
    send_d_prognosis = _sync(ops.send_d_prognosis)
    agr_portfolio_update = _sync(ops.agr_portfolio_update)
    agr_portfolio_query = _sync(ops.agr_portfolio_query)
    annotate = _sync(ops.annotate)
    list_annotations = _sync(ops.list_annotations)
    delete_annotation = _sync(ops.delete_annotation)
    import_holidays = _sync(ops.import_holidays)
    report = _sync(ops.report)
    headroom = _sync(ops.headroom)
    forecast = _sync(ops.forecast)
    forecasting_job = _sync(ops.forecasting_job)
    bid_curves = _sync(ops.bid_curves)
    reports = _sync(ops.reports)
    report_frame = _sync(ops.report_frame)


class AsyncClient:
    """:class:`Client`'s methods over ``httpx.AsyncClient``, each awaitable."""

    def __init__(
        self,
        base_url: str | None = None,
        token: str | None = None,
        timeout: float = 30,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url, headers = _session(base_url, token)
        self._http = httpx.AsyncClient(
            base_url=self.base_url, headers=headers, timeout=timeout, transport=transport
        )
        self._sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
        self._clock: Callable[[], float] = time.monotonic

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    def __repr__(self) -> str:
        return f"AsyncClient({self.base_url!r})"

    async def _perform(self, effect: Effect) -> Any:
        if isinstance(effect, Sleep):
            return await self._sleep(effect.seconds)
        if isinstance(effect, Now):
            return self._clock()
        request = _httpx_request(self._http, request_of(effect))
        try:
            response = await self._http.send(request)
        except httpx.TransportError as err:
            raise _unreachable(err, effect, self.base_url) from err
        return decode(effect, _response(response))

    me = _async(ops.me)
    create_site = _async(ops.create_site)
    sites = _async(ops.sites)
    site = _async(ops.site)
    delete_site = _async(ops.delete_site)
    create_portfolio = _async(ops.create_portfolio)
    portfolios = _async(ops.portfolios)
    portfolio = _async(ops.portfolio)
    create_sensor = _async(ops.create_sensor)
    sensors = _async(ops.sensors)
    upload_series = _async(ops.upload_series)
    series = _async(ops.series)
    submit = _async(ops.submit)
    job = _async(ops.job)
    jobs = _async(ops.jobs)
    cancel = _async(ops.cancel)
    wait = _async(ops.wait)
    schedule = _async(ops.schedule)
    what_if = _async(ops.what_if)
    gopacs_redispatch_bid = _async(ops.gopacs_redispatch_bid)
    uftp_participants = _async(ops.uftp_participants)
    add_uftp_participant = _async(ops.add_uftp_participant)
    delete_uftp_participant = _async(ops.delete_uftp_participant)
    uftp_messages = _async(ops.uftp_messages)
    flex_offers = _async(ops.flex_offers)
    revoke_flex_offer = _async(ops.revoke_flex_offer)
    commitments = _async(ops.commitments)
    send_d_prognosis = _async(ops.send_d_prognosis)
    agr_portfolio_update = _async(ops.agr_portfolio_update)
    agr_portfolio_query = _async(ops.agr_portfolio_query)
    annotate = _async(ops.annotate)
    list_annotations = _async(ops.list_annotations)
    delete_annotation = _async(ops.delete_annotation)
    import_holidays = _async(ops.import_holidays)
    report = _async(ops.report)
    headroom = _async(ops.headroom)
    forecast = _async(ops.forecast)
    forecasting_job = _async(ops.forecasting_job)
    bid_curves = _async(ops.bid_curves)
    reports = _async(ops.reports)
    report_frame = _async(ops.report_frame)


def what_if(
    portfolio: Mapping[str, Any],
    scenarios: Mapping[str, Scenario | Mapping[str, Any]],
    *,
    client: Client | None = None,
    parallel: bool = True,
    timeout: float | None = 600,
    progress: bool | IO[str] = True,
) -> pd.DataFrame:
    """Schedule a portfolio request and variants of it; compare them in one table.

    Each scenario is a function given a deep copy of ``portfolio`` that returns the variant
    (see :func:`scale_prices`, :func:`with_congestion_limit`, :func:`bigger_batteries`,
    :func:`more_batteries`, :func:`with_market_target`, :func:`combine`), or a dict
    deep-merged into it (``{"target": None}`` drops the target). With ``parallel`` every job
    is submitted before any is waited for, so they run side by side on the server's Ray
    cluster. If one fails (or on Ctrl-C) the others are cancelled and the error raised.

    Returns :func:`compare_results` of ``"base"`` (the unchanged request) and the scenarios.
    ``client`` defaults to ``Client()`` (``$VPP_URL`` or 127.0.0.1:8000, ``$VPP_TOKEN``);
    with an :class:`AsyncClient` use ``await client.what_if(...)``.
    """
    if isinstance(client, AsyncClient):
        raise TypeError("with an AsyncClient, use `await client.what_if(...)`")
    if client is not None:
        return client.what_if(
            portfolio, scenarios, parallel=parallel, timeout=timeout, progress=progress
        )
    with Client() as own:
        return own.what_if(
            portfolio, scenarios, parallel=parallel, timeout=timeout, progress=progress
        )
