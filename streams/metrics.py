"""The worker's Prometheus metrics (``prometheus_client``), served on ``/metrics``.

One module defines them all, so the names are in one place; stages and the adapter
increment them. Counters are per process; Prometheus sums them across workers.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

CONSUMED = Counter("metricloom_messages_consumed_total", "Messages a stage finished", ["stage"])
PRODUCED = Counter(
    "metricloom_records_produced_total", "Records acknowledged by the broker", ["topic"]
)
BATCHES = Histogram(
    "metricloom_stage_batch_seconds",
    "Time to process and deliver one batch",
    ["stage"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
PAUSES = Counter(
    "metricloom_stage_pauses_total", "Times a stage paused because a service was away", ["stage"]
)
PAUSED = Gauge("metricloom_stage_paused", "1 while a stage waits for a service", ["stage"])
DEAD_LETTERS = Counter("metricloom_dead_letters_total", "Dead letters produced", ["stage"])
POLLS = Counter("metricloom_polls_total", "Provider answers fetched", ["provider"])
FETCH_ERRORS = Counter(
    "metricloom_fetch_errors_total",
    "Polls that failed, by provider and HTTP status",
    ["provider", "status"],
)
TRANSFORM_FAILURES = Counter(
    "metricloom_transform_failures_total", "Payloads a transformer failed on", ["template"]
)
POINTS_WRITTEN = Counter("metricloom_points_written_total", "Points committed to the hypertable")
CHARTS_PUBLISHED = Counter("metricloom_chart_configs_published_total", "Chart configs published")
SANDBOX_BATCHES = Histogram(
    "metricloom_sandbox_batch_seconds",
    "Wall time of one sandbox batch",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
SANDBOX_BATCH_SIZE = Histogram(
    "metricloom_sandbox_batch_inputs",
    "Inputs per sandbox batch",
    buckets=(1, 2, 5, 10, 25, 50, 100, 250, 1000),
)
CONSUMER_LAG = Gauge(
    "metricloom_consumer_lag",
    "Messages behind the end of each consumed partition",
    ["topic", "partition"],
)
REFETCHES = Counter(
    "metricloom_polls_refetched_total",
    "Polls fetched again because the worker that sent the request died before recording it",
)
SKIPPED = Counter(
    "metricloom_records_skipped_total",
    "Records for a paused or deleted metric (or a removed chart) that were on their way: not"
    " processed, not dead-lettered",
    ["stage", "reason"],
)
UNDELIVERABLE = Counter(
    "metricloom_records_undeliverable_total",
    "Records for an organisation whose topics are gone (a removed tenant), dropped",
    ["topic"],
)
