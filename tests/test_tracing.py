"""One portfolio job is one trace: API request -> job -> coordinator -> ADMM iterations ->
shard calls -> site solves, across the API process and the Ray actors.

The API runs in this process (FastAPI's in-process test client); its spans go to an
in-memory exporter added to this process's tracer provider. The job runner is an actor
started here with ``VPP_OTEL_EXPORTER=file`` in its ``runtime_env``, which the coordinator
and the shards it starts inherit: every actor process appends its spans to one JSON-lines
file that the test reads. The expected structure comes from the job's own numbers (its
iterations, its sites) and from the span ids, never from the tracing code.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import ray
import ray.cloudpickle
from db_fixtures import fresh_database
from fastapi.testclient import TestClient
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from test_portfolio import batteries, congestion

from actors.jobs import JobRunner
from api.app import create_app
from api.serve import RayDispatcher
from store import make_engine, session_factory, upgrade
from store import repository as repo
from vpp import telemetry

pytest_plugins = ["db_fixtures"]
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

TOKEN = "vpp_test-tracing-admin-token"
DEADLINE_S = 60.0


# -- propagation helpers, in one process ------------------------------------------------------


@pytest.fixture
def memory() -> Iterator[InMemorySpanExporter]:
    """The spans this process ends while the test runs."""
    telemetry.configure()
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)  # vpp's SDK provider, set once per process
    exporter = InMemorySpanExporter()
    processor = SimpleSpanProcessor(exporter)
    provider.add_span_processor(processor)
    yield exporter
    processor.shutdown()  # the provider keeps it, but it exports nothing more


def test_a_carrier_continues_its_trace(memory):
    with telemetry.span_from(None, "outer", job="j-1") as outer:
        carrier = telemetry.inject()
    assert set(carrier) == {"traceparent"}
    version, trace_id, span_id, _ = carrier["traceparent"].split("-")
    context = outer.get_span_context()
    assert (version, int(trace_id, 16), int(span_id, 16)) == (
        "00", context.trace_id, context.span_id
    )
    with telemetry.span_from(json.loads(json.dumps(carrier)), "inner", iteration=3):
        pass  # as if in another process: the carrier went through JSON (the database)
    with telemetry.span_from({}, "fresh"), telemetry.span_from(None, "nested"):
        pass
    spans = {s.name: s for s in memory.get_finished_spans()}
    assert spans["outer"].attributes == {"vpp.job": "j-1"}
    assert spans["inner"].attributes == {"vpp.iteration": 3}
    assert spans["inner"].context.trace_id == context.trace_id
    assert spans["inner"].parent is not None and spans["inner"].parent.span_id == context.span_id
    assert spans["inner"].parent.is_remote
    # no carrier: a new trace, or a child of the current span when there is one
    assert spans["fresh"].parent is None
    assert spans["fresh"].context.trace_id != context.trace_id
    assert spans["nested"].parent is not None
    assert spans["nested"].parent.span_id == spans["fresh"].context.span_id


def test_the_file_exporter_appends_one_json_object_per_span(tmp_path):
    path = tmp_path / "spans.jsonl"
    exporter = telemetry.JsonLinesExporter(str(path))
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("a") as a, tracer.start_as_current_span("b"):
        pass
    provider.shutdown()
    lines = path.read_text().splitlines()
    spans = [json.loads(line) for line in lines]
    assert [s["name"] for s in spans] == ["b", "a"]  # in the order they ended
    assert spans[0]["parent_id"] == f"0x{a.get_span_context().span_id:016x}"
    assert spans[1]["parent_id"] is None


# -- one job across processes ------------------------------------------------------------------


def _spans_in(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def _ids(span: dict[str, Any]) -> tuple[int, int, int | None]:
    """Trace id, span id and parent span id of a span from the file."""
    parent = span["parent_id"]
    return (
        int(span["context"]["trace_id"], 16),
        int(span["context"]["span_id"], 16),
        int(parent, 16) if parent else None,
    )


@pytest.mark.usefixtures("ray_session")
def test_one_job_is_one_trace_from_the_api_to_the_site_solves(memory, tmp_path):
    path = tmp_path / "spans.jsonl"
    with fresh_database("sqlite", tmp_path) as url:
        engine = make_engine(url)
        upgrade(engine)
        with session_factory(engine).begin() as session:
            repo.ensure_admin(session, token=TOKEN)
        engine.dispose()
        env = {"VPP_OTEL_EXPORTER": "file", "VPP_OTEL_FILE": str(path)}
        remote: Any = ray.remote(JobRunner)
        runner = remote.options(
            num_cpus=0, max_concurrency=8, runtime_env={"env_vars": env}
        ).remote(url, 1)
        request = congestion(batteries(3, 2), 0.6)
        try:
            app = create_app(url, RayDispatcher(runner))
            with TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"}) as http:
                accepted = http.post("/api/v1/scheduling-job/portfolio", json=request)
                assert accepted.status_code == 202, accepted.text
                job = accepted.json()["job"]
                body = _wait(http, job)
                spans = _wait_for_span(path, "scheduling.job")
            app.state.sessions.kw["bind"].dispose()
        finally:
            ray.kill(runner)
    assert body["status"] == "finished", body
    iterations = body["result"]["portfolio"]["iterations"]
    sites = [site["id"] for site in request["sites"]]

    # the root: the API request span, in this process
    name = "POST /api/v1/scheduling-job/portfolio"
    api = [s for s in memory.get_finished_spans() if s.name == name]
    assert len(api) == 1 and api[0].parent is None
    root = api[0].context
    local = {s.context.span_id: s for s in memory.get_finished_spans()}

    # every actor span is in the request's trace
    assert {_ids(s)[0] for s in spans} == {root.trace_id}
    by_id = {_ids(s)[1]: s for s in spans}

    def ancestors(span: dict[str, Any]) -> list[str]:
        """Names from the span's parent up to the root (through this process's spans)."""
        names, parent = [], _ids(span)[2]
        while parent is not None:
            if parent in by_id:
                names.append(by_id[parent]["name"])
                parent = _ids(by_id[parent])[2]
            else:
                local_span = local[parent]  # a KeyError here: a broken chain
                names.append(local_span.name)
                parent = local_span.parent.span_id if local_span.parent else None
        return names

    (job_span,) = [s for s in spans if s["name"] == "scheduling.job"]
    assert job_span["attributes"]["vpp.job"] == job
    assert ancestors(job_span)[-1] == api[0].name  # queued by this request

    (run,) = [s for s in spans if s["name"] == "portfolio.job"]
    assert _ids(run)[2] == _ids(job_span)[1]
    iteration_spans = [s for s in spans if s["name"] == "admm.iteration"]
    assert len(iteration_spans) == iterations
    assert {_ids(s)[2] for s in iteration_spans} == {_ids(run)[1]}
    assert sorted(s["attributes"]["vpp.iteration"] for s in iteration_spans) == list(
        range(1, iterations + 1)
    )

    # each iteration: one x-update call per shard (one site each here), one solve per site;
    # every 5th also the bound's LPs and, near the end, the final step's
    for iteration in iteration_spans:
        children = [s for s in spans if _ids(s)[2] == _ids(iteration)[1]]
        calls = [s for s in children if s["name"] == "shard.x_update"]
        assert len(calls) == len(sites)
        others = {s["name"] for s in children} - {"shard.x_update"}
        assert others <= {"shard.dual_values", "shard.solve_within"}
        solves = [s for s in spans if _ids(s)[2] in {_ids(c)[1] for c in calls}]
        assert sorted(s["attributes"]["vpp.site"] for s in solves) == sorted(sites)
        assert {s["name"] for s in solves} == {"site.solve"}

    # and a site solve's chain up to the request (FastAPI may add spans below the root)
    chain = ancestors(solves[0])
    assert chain[:4] == ["shard.x_update", "admm.iteration", "portfolio.job", "scheduling.job"]
    assert chain[-1] == api[0].name


def _wait(http: TestClient, job: str) -> dict[str, Any]:
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        body: dict[str, Any] = http.get(f"/api/v1/scheduling-job/{job}").json()
        if body["status"] in ("finished", "failed", "cancelled"):
            return body
        time.sleep(0.1)
    raise AssertionError(f"job {job} did not end within {DEADLINE_S} s")


def _wait_for_span(path: Path, name: str) -> list[dict[str, Any]]:
    """The file's spans once span ``name`` is among them (it ends after the job's outcome
    is stored)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        spans = _spans_in(path)
        if any(s["name"] == name for s in spans):
            return spans
        time.sleep(0.1)
    raise AssertionError(f"no span {name!r} in {path} within 10 s")
