"""OpenTelemetry tracing, configured once per process from the environment.

``VPP_OTEL_EXPORTER``: ``none`` (default: spans are created but not exported), ``console``
(printed as JSON on stderr), ``otlp`` (OTLP/HTTP to ``OTEL_EXPORTER_OTLP_ENDPOINT``; needs
``opentelemetry-exporter-otlp-proto-http``), or ``file`` (one JSON object per line, appended to
``VPP_OTEL_FILE`` by every process as each span ends: traces of a one-machine cluster without
a collector). Spans are made at the boundaries: each API request, each scheduling job
(``scheduling.job``), a portfolio run (``portfolio.job``), each ADMM iteration
(``admm.iteration``), each shard call (``shard.<method>``) and each site solve
(``site.solve``).

One job is one trace across processes: :func:`inject` writes the current span context into a
W3C Trace Context carrier (``{"traceparent": ...}``, JSON-able: it is stored with the job and
passed to the actors) and :func:`span_from` continues the trace from it in another process.
Ray workers are separate processes: each configures its provider from its own environment on
first use (the driver passes ``VPP_OTEL_*`` through the actors' ``runtime_env``).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import lru_cache

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

from vpp.settings import get_settings

__all__ = ["JsonLinesExporter", "configure", "inject", "span_from", "tracer"]


logger = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def configure() -> str:
    """Install vpp's tracer provider (once); returns the exporter chosen."""
    choice = get_settings().otel_exporter
    provider = TracerProvider(resource=Resource.create({"service.name": "vpp"}))
    exporter = _exporter(choice)
    if exporter is not None:
        # console and file write as each span ends: nothing is lost when Ray kills an actor
        processor = (
            BatchSpanProcessor(exporter) if choice == "otlp" else SimpleSpanProcessor(exporter)
        )
        provider.add_span_processor(processor)
    trace.set_tracer_provider(provider)
    return choice


def _exporter(choice: str) -> SpanExporter | None:
    if choice == "console":
        return ConsoleSpanExporter(out=sys.stderr)
    if choice == "otlp":
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
                OTLPSpanExporter,
            )
        except ImportError:
            logger.warning(
                "VPP_OTEL_EXPORTER=otlp but opentelemetry-exporter-otlp-proto-http "
                "is not installed; spans are not exported"
            )
            return None
        exporter: SpanExporter = OTLPSpanExporter()  # an optional package: Any to mypy
        return exporter
    if choice == "file":
        path = (get_settings().otel_file or "").strip()
        if not path:
            logger.warning("VPP_OTEL_EXPORTER=file but VPP_OTEL_FILE is not set; spans are not "
                           "exported")
            return None
        return JsonLinesExporter(path)
    if choice not in ("", "none"):
        logger.warning("unknown VPP_OTEL_EXPORTER %r; spans are not exported", choice)
    return None


def tracer(name: str) -> trace.Tracer:
    configure()
    return trace.get_tracer(name)


class JsonLinesExporter(SpanExporter):
    """Appends each span as one line of JSON (``ReadableSpan.to_json``) to ``path``.

    Several processes may append to the same file: each export is one ``write`` on a file
    opened with ``O_APPEND``, so lines do not interleave on a local file system.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        data = "".join(span.to_json(indent=None) + "\n" for span in spans).encode()
        try:
            with self._lock:
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                try:
                    os.write(fd, data)
                finally:
                    os.close(fd)
        except OSError:
            logger.exception("could not append spans to %s", self.path)
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS


_PROPAGATOR = TraceContextTextMapPropagator()


def inject() -> dict[str, str]:
    """The current span context as a W3C Trace Context carrier (``traceparent`` and, when
    set, ``tracestate``); empty when no span is recording."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier


@contextmanager
def span_from(
    carrier: Mapping[str, str] | None, name: str, **attrs: AttributeValue
) -> Iterator[trace.Span]:
    """Start span ``name`` as the current span, a child of the context in ``carrier`` (from
    :func:`inject`, in any process), or of the current span when the carrier holds none.
    Each keyword becomes attribute ``vpp.<key>``."""
    parent = _PROPAGATOR.extract(carrier or {}, context=otel_context.get_current())
    attributes = {f"vpp.{key}": value for key, value in attrs.items()}
    with tracer("vpp").start_as_current_span(name, context=parent, attributes=attributes) as span:
        yield span
