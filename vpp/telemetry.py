"""OpenTelemetry tracing, configured once per process from the environment.

``VPP_OTEL_EXPORTER``: ``none`` (default: spans are created but not exported), ``console``
(printed as JSON on stderr), or ``otlp`` (OTLP/HTTP to ``OTEL_EXPORTER_OTLP_ENDPOINT``; needs
``opentelemetry-exporter-otlp-proto-http``). Spans are made at the boundaries: each ADMM
iteration (``admm.iteration``), each site solve (``site.solve``), each API request.

Ray workers are separate processes: each calls :func:`configure` when its actor starts.
"""

from __future__ import annotations

import logging
import os
import sys
from functools import lru_cache

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)

logger = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def configure() -> str:
    """Install vpp's tracer provider (once); returns the exporter chosen."""
    choice = os.environ.get("VPP_OTEL_EXPORTER", "none").strip().lower()
    provider = TracerProvider(resource=Resource.create({"service.name": "vpp"}))
    exporter = _exporter(choice)
    if exporter is not None:
        processor = (
            SimpleSpanProcessor(exporter) if choice == "console" else BatchSpanProcessor(exporter)
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
        return OTLPSpanExporter()
    if choice not in ("", "none"):
        logger.warning("unknown VPP_OTEL_EXPORTER %r; spans are not exported", choice)
    return None


def tracer(name: str) -> trace.Tracer:
    configure()
    return trace.get_tracer(name)
