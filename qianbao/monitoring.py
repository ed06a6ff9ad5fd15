"""Logs and metrics wired into the app and the commands.

``qianbao/observability`` is the shared-kernel part and reads no domain; this module
hands it what the domains know at scrape time (the outbox backlog, the worker's lag).
"""

from __future__ import annotations

from functools import partial

from fastapi import FastAPI
from prometheus_client import start_http_server

from qianbao import jobs
from qianbao.db import Database, Tx
from qianbao.notify import service as notify
from qianbao.observability import http, metrics
from qianbao.settings import Settings


def instrument(app: FastAPI, settings: Settings, database: Database) -> None:
    """Request ids and access lines for every request; ``/metrics`` when a token is set."""
    app.add_middleware(http.RequestLogMiddleware)
    if settings.metrics_token:
        http.add_metrics_endpoint(app, settings.metrics_token, state_collector(database))


def state_collector(database: Database) -> metrics.StateCollector:
    return metrics.StateCollector(partial(database.run, read_state, isolation="read committed"))


def read_state(tx: Tx) -> metrics.ScrapeState:
    return metrics.ScrapeState(outbox=notify.backlog(tx), job_lag_seconds=jobs.lag(tx))


def serve_metrics(settings: Settings) -> None:
    """The metrics listener of ``metrics_bind`` ("host:port"), on a thread of this
    process: with several workers it adds up their values from the multiprocess folder."""
    host, _, port = settings.metrics_bind.rpartition(":")
    registry = metrics.scrape_registry(state_collector(Database(settings)))
    start_http_server(int(port), host.strip("[]") or "127.0.0.1", registry=registry)
