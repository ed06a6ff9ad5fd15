"""Every Prometheus metric Qianbao exposes, and the small functions that count them.

The domains call these functions (``ledger_operations``, ``sms_sent``, ...) rather than
touching the metric objects, so label values stay bounded and free of personal data in
one place: a number becomes its calling code, a ledger key the word it starts with.

Multi-process: when ``PROMETHEUS_MULTIPROC_DIR`` is set before this module is first
imported (``qianbao serve --workers N`` sets it), prometheus-client writes every value
to files in that folder and ``exposition`` adds the processes up. Values read from the
database at scrape time (outbox backlog, worker lag) come from a ``StateCollector``.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import phonenumbers
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from qianbao.errors import QianbaoError
from qianbao.observability import multiproc

log = logging.getLogger(__name__)

MULTIPROC_ENV = multiproc.MULTIPROC_ENV
# Request latencies from a cached page (ms) to a face check (seconds).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
JOB_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0)
# A label made from data (a ledger key's first word) never takes more values than this.
MAX_LABEL_VALUES = 64

HTTP_REQUEST_SECONDS = Histogram(
    "qianbao_http_request_duration_seconds",
    "Time to answer an HTTP request, by route template, method and status class.",
    ["route", "method", "status"],
    buckets=LATENCY_BUCKETS,
)
LEDGER_OPERATIONS = Counter(
    "qianbao_ledger_operations",
    "Ledger operations by kind (the first word of the idempotency key, or the request's op) "
    "and outcome (done, replayed, or the refusal's error code).",
    ["kind", "outcome"],
)
MONEY_GROUP_OPERATIONS = Histogram(
    "qianbao_money_group_operations",
    "Payments and transfers per shared transaction (qianbao.batching): 1 when alone.",
    buckets=(1, 2, 4, 8, 16, 32, 64),
)
MONEY_IN_DATABASE = Counter(
    "qianbao_money_in_database",
    "Payments by balance tried as one database call (wallet/payments/in_database.py), by"
    " outcome: paid there, or left to the Python path (a refusal, a retry, a case the"
    " function does not take).",
    ["outcome"],
)
RATE_LIMIT_REFUSALS = Counter(
    "qianbao_rate_limit_refusals",
    "Requests refused by a rate limit or quota, by rule (the refusal's error code).",
    ["rule"],
)
VERIFICATION_OUTCOMES = Counter(
    "qianbao_verification_outcomes",
    "Real-name verification decisions by route (passport_face, passport_chip, bank_card) "
    "and outcome (verified, review, refused, rejected).",
    ["route", "outcome"],
)
SMS_SENT = Counter(
    "qianbao_sms_sent",
    "SMS messages handed to the gateway, by the recipient's calling code and region.",
    ["calling_code", "region"],
)
JOB_RUNS = Counter(
    "qianbao_worker_job_runs",
    "Worker job runs by job and outcome (ok, failed).",
    ["job", "outcome"],
)
JOB_ROWS = Counter("qianbao_worker_job_rows", "Things a worker job did, by job.", ["job"])
JOB_SECONDS = Histogram(
    "qianbao_worker_job_duration_seconds",
    "Time one run of a worker job took.",
    ["job"],
    buckets=JOB_BUCKETS,
)

_KIND = re.compile(r"[a-z][a-z0-9_-]{0,31}")
_ledger_kinds: set[str] = set()


def http_request(route: str, method: str, status: int, seconds: float) -> None:
    HTTP_REQUEST_SECONDS.labels(route, method, f"{status // 100}xx").observe(seconds)


def ledger_operations(
    operations: Iterable[tuple[str, Mapping[str, object]]], outcomes: Iterable[object]
) -> None:
    """Count a batch of ledger operations: (key, request) pairs and their outcomes (a
    receipt, which may say ``replayed``, or a ``QianbaoError``)."""
    for (key, request), outcome in zip(operations, outcomes, strict=False):
        LEDGER_OPERATIONS.labels(_ledger_kind(key, request), _ledger_outcome(outcome)).inc()


def money_group(operations: int) -> None:
    MONEY_GROUP_OPERATIONS.observe(operations)


def money_in_database(outcome: str) -> None:
    MONEY_IN_DATABASE.labels(outcome).inc()


def rate_limit_refused(rule: str) -> None:
    RATE_LIMIT_REFUSALS.labels(rule).inc()


def verification_outcome(route: str, outcome: str) -> None:
    VERIFICATION_OUTCOMES.labels(route, outcome).inc()


@contextmanager
def verification_refusals(route: str) -> Iterator[None]:
    """Count a ``QianbaoError`` raised inside as the route's refusal (an outside party
    that said no) or error (one that could not answer: a 5xx), and let it go on."""
    try:
        yield
    except QianbaoError as error:
        verification_outcome(route, "error" if error.status >= 500 else "refused")
        raise


def sms_sent(e164: str) -> None:
    """Count one SMS by where it went: the calling code and region, never the number."""
    try:
        number = phonenumbers.parse(e164)
    except phonenumbers.NumberParseException:
        SMS_SENT.labels("unknown", "unknown").inc()
        return
    region = phonenumbers.region_code_for_number(number) or "unknown"
    SMS_SENT.labels(str(number.country_code), region).inc()


def job_ran(job: str, rows: int, seconds: float, *, failed: bool) -> None:
    JOB_RUNS.labels(job, "failed" if failed else "ok").inc()
    JOB_ROWS.labels(job).inc(rows)
    JOB_SECONDS.labels(job).observe(seconds)


def _ledger_kind(key: str, request: Mapping[str, object]) -> str:
    """What kind of operation: the request's ``op`` when it names one, else the word its
    key starts with (``order:<id>:pay`` is an order's). Ids never become labels."""
    op = request.get("op")
    word = op if isinstance(op, str) else key.partition(":")[0].lower()
    if not _KIND.fullmatch(word):
        return "other"
    if word not in _ledger_kinds:
        if len(_ledger_kinds) >= MAX_LABEL_VALUES:
            return "other"
        _ledger_kinds.add(word)
    return word


def _ledger_outcome(outcome: object) -> str:
    if isinstance(outcome, QianbaoError):
        return outcome.code
    return "replayed" if getattr(outcome, "replayed", False) else "done"


# --- values read at scrape time ------------------------------------------------------


@dataclass(frozen=True)
class Backlog:
    """An outbox channel's pending messages and the age of the oldest (0 when none)."""

    pending: int
    oldest_age_seconds: float


@dataclass(frozen=True)
class ScrapeState:
    outbox: Mapping[str, Backlog]
    # Per periodic job: how long past its due time it is still waiting (0: not due).
    job_lag_seconds: Mapping[str, float]


class StateCollector(Collector):
    """Gauges read from the database when scraped, so every process reports the truth
    and no worker has to be up for the backlog to show."""

    def __init__(self, read: Callable[[], ScrapeState]) -> None:
        self._read = read

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "qianbao_database_up", "Whether the scrape could read the database (1) or not (0)."
        )
        try:
            state = self._read()
        except Exception:  # a scrape must still answer, with up 0, when the database is down
            log.warning("metrics: reading the database failed", exc_info=True)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from _state_families(state)


def _state_families(state: ScrapeState) -> Iterator[Metric]:
    pending = GaugeMetricFamily(
        "qianbao_outbox_pending_messages", "Messages waiting in the outbox.", labels=["channel"]
    )
    oldest = GaugeMetricFamily(
        "qianbao_outbox_oldest_pending_age_seconds",
        "Age of the oldest message waiting in the outbox (0 when none waits).",
        labels=["channel"],
    )
    for channel, backlog in sorted(state.outbox.items()):
        pending.add_metric([channel], backlog.pending)
        oldest.add_metric([channel], backlog.oldest_age_seconds)
    lag = GaugeMetricFamily(
        "qianbao_worker_job_lag_seconds",
        "How long a periodic worker job has been due without being run (0: not due).",
        labels=["job"],
    )
    for job, seconds in sorted(state.job_lag_seconds.items()):
        lag.add_metric([job], seconds)
    yield from (pending, oldest, lag)


class _DefaultRegistry(Collector):
    """This process's metrics, for a scrape outside multiprocess mode."""

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


def multiprocess() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


def scrape_registry(*extra: Collector) -> CollectorRegistry:
    """A registry for one scrape: every process's metrics (from the multiprocess folder
    when there is one, else this process's) and the ``extra`` collectors."""
    registry = CollectorRegistry(auto_describe=False)
    if multiprocess():
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry.register(_DefaultRegistry())
    for collector in extra:
        registry.register(collector)
    return registry


def exposition(*extra: Collector) -> bytes:
    """The Prometheus text format of ``scrape_registry(*extra)``."""
    return generate_latest(scrape_registry(*extra))
