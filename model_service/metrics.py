"""Prometheus metrics of the service (served as text on `/metrics`)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

REGISTRY = CollectorRegistry(auto_describe=True)

REQUESTS = Counter(
    "midasheng_http_requests",
    "HTTP requests by endpoint, method and status",
    ["endpoint", "method", "status"],
    registry=REGISTRY,
)
REQUEST_SECONDS = Histogram(
    "midasheng_http_request_duration_seconds",
    "HTTP request latency by endpoint",
    ["endpoint", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
BATCH_SIZE = Histogram(
    "midasheng_batch_size",
    "Sizes of the batches a model actually ran",
    ["model"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
    registry=REGISTRY,
)
BATCH_SECONDS = Histogram(
    "midasheng_batch_duration_seconds",
    "Time a model spent on one batch",
    ["model"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
    registry=REGISTRY,
)
QUEUE_WAIT = Histogram(
    "midasheng_queue_wait_seconds",
    "Time a request waited in a batcher queue before its batch ran",
    ["model"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
    registry=REGISTRY,
)
QUEUE_DEPTH = Gauge(
    "midasheng_queue_depth", "Items waiting in a batcher queue", ["model"], registry=REGISTRY
)
BATCH_REJECTED = Counter(
    "midasheng_queue_rejected",
    "Requests refused because a batcher queue was full",
    ["model"],
    registry=REGISTRY,
)
EVENTS = Counter(
    "midasheng_events",
    "Sound events started, by category and source",
    ["category", "source"],
    registry=REGISTRY,
)

# Live sources and the event log
SOURCE_STATE = Gauge(
    "midasheng_source_state",
    "1 for the state each live source is in, 0 for the others",
    ["source", "state"],
    registry=REGISTRY,
)
SOURCE_LEVEL = Gauge(
    "midasheng_source_level_dbfs",
    "Latest sound level of a live source",
    ["source"],
    registry=REGISTRY,
)
SOURCE_BACKLOG = Gauge(
    "midasheng_source_backlog_seconds",
    "Audio received from a source and not yet analysed",
    ["source"],
    registry=REGISTRY,
)
SOURCE_RESTARTS = Counter(
    "midasheng_source_restarts",
    "Times a source's ffmpeg ended or failed and was retried",
    ["source"],
    registry=REGISTRY,
)
STORE_QUEUE = Gauge(
    "midasheng_store_queue_depth",
    "Event log operations waiting for the database thread",
    registry=REGISTRY,
)
STORE_UNSAVED = Gauge(
    "midasheng_store_unsaved_events",
    "Events delivered live but not yet written (the data dir's disk is full or failing)",
    registry=REGISTRY,
)
STORE_ERRORS = Counter(
    "midasheng_store_errors", "Event log reads or writes that failed", registry=REGISTRY
)
UPLOADS_REFUSED = Counter(
    "midasheng_uploads_refused",
    "Uploads refused with 503 before reading because max_pending_uploads were in progress",
    registry=REGISTRY,
)
WS_SUBSCRIBERS = Gauge(
    "midasheng_ws_subscribers", "WebSocket connections subscribed to events", registry=REGISTRY
)
WS_QUEUE_DEPTH = Gauge(
    "midasheng_ws_queue_depth",
    "Messages waiting to be sent, summed over WebSocket subscribers",
    registry=REGISTRY,
)
WS_QUEUE_BYTES = Gauge(
    "midasheng_ws_queue_bytes",
    "Bytes of text waiting to be sent, summed over WebSocket subscribers",
    registry=REGISTRY,
)
CONNECTIONS = Gauge(
    "midasheng_http_connections", "Open HTTP and WebSocket connections", registry=REGISTRY
)
CONNECTIONS_CLOSED = Counter(
    "midasheng_http_connections_closed",
    "Connections the service closed to protect itself, by reason",
    ["reason"],
    registry=REGISTRY,
)
WS_OVERFLOWS = Counter(
    "midasheng_ws_overflows",
    "WebSocket subscribers disconnected because they fell too far behind",
    registry=REGISTRY,
)


def render() -> bytes:
    """Current metrics in the Prometheus text exposition format."""
    return generate_latest(REGISTRY)
