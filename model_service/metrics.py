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


def render() -> bytes:
    """Current metrics in the Prometheus text exposition format."""
    return generate_latest(REGISTRY)
