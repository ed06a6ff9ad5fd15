"""/metrics: Prometheus text behind a bearer token, with the families operators watch."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from qianbao.app import create_app
from qianbao.clock import FrozenClock
from qianbao.db import Database, Tx
from qianbao.money import Money
from qianbao.notify import service as notify
from qianbao.observability import metrics
from qianbao.settings import Settings
from qianbao.wallet.ledger import service as ledger
from qianbao.worker_models import WorkerJob
from tests.api_helpers import api_sign_up

TOKEN = "a-long-random-metrics-token"
FAMILIES = {
    "qianbao_http_request_duration_seconds",
    "qianbao_ledger_operations",
    "qianbao_outbox_pending_messages",
    "qianbao_outbox_oldest_pending_age_seconds",
    "qianbao_worker_job_lag_seconds",
    "qianbao_worker_job_runs",
    "qianbao_worker_job_duration_seconds",
    "qianbao_rate_limit_refusals",
    "qianbao_verification_outcomes",
    "qianbao_sms_sent",
    "qianbao_database_up",
}


@pytest.fixture
def scraped(settings: Settings, clock: FrozenClock) -> Iterator[TestClient]:
    settings.metrics_token = TOKEN
    with TestClient(create_app(settings, clock), base_url="http://127.0.0.1") as client:
        yield client


def scrape(client: TestClient) -> dict[str, Metric]:
    answer = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    return {family.name: family for family in text_string_to_metric_families(answer.text)}


def value(families: dict[str, Metric], sample: str, **labels: str) -> float:
    family = families[sample.removesuffix("_total").removesuffix("_count")]
    return sum(
        s.value
        for s in family.samples
        if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items())
    )


def ledger_transfer_twice(tx: Tx) -> None:
    issuance = ledger.open_account(tx, kind="issuance", currency="CNY")
    wallet = ledger.open_account(tx, kind="user_balance", currency="CNY")
    key = f"metrics-test:{uuid.uuid4()}"
    ledger.transfer(tx, key, issuance, wallet, Money("CNY", 100))
    assert ledger.transfer(tx, key, issuance, wallet, Money("CNY", 100)).replayed


def queue_undelivered_sms(tx: Tx) -> None:
    notify.queue_message(tx, "sms", "+447911123456", "hello", "en", lambda db, ids: 0)


def test_a_scrape_shows_requests_money_messages_refusals_and_late_jobs(
    scraped: TestClient, clock: FrozenClock
) -> None:
    db: Database = scraped.app.state.db  # type: ignore[attr-defined]
    before = scrape(scraped)
    for _ in range(3):
        assert scraped.get("/healthz").status_code == 200
    api_sign_up(scraped)  # one SMS to a +44 number
    db.settings.number_lookups_per_ip_per_hour = 1  # the sign-up used the one allowed
    another = {"country": "GB", "number": "07400 900123"}
    refused = scraped.post("/api/v1/auth/number-check", json=another)
    assert refused.status_code == 429
    db.run(ledger_transfer_twice)
    db.run(queue_undelivered_sms)
    clock.advance(seconds=90)
    late = WorkerJob(name="metrics test job", next_run_at=clock.now() - timedelta(seconds=45))
    db.run(lambda tx: tx.session.add(late))
    after = scrape(scraped)

    assert set(after) >= FAMILIES

    def grew(sample: str, **labels: str) -> float:
        return value(after, sample, **labels) - value(before, sample, **labels)

    healthz = {"route": "/healthz", "method": "GET", "status": "2xx"}
    assert grew("qianbao_http_request_duration_seconds_count", **healthz) == 3
    assert grew("qianbao_sms_sent_total", calling_code="44") == 1  # region: as numbered
    assert grew("qianbao_rate_limit_refusals_total", rule="rate.lookups") == 1
    assert grew("qianbao_ledger_operations_total", kind="transfer", outcome="done") == 1
    assert grew("qianbao_ledger_operations_total", kind="transfer", outcome="replayed") == 1
    assert value(after, "qianbao_outbox_pending_messages", channel="sms") == 1
    assert value(after, "qianbao_outbox_oldest_pending_age_seconds", channel="sms") == 90
    assert value(after, "qianbao_worker_job_lag_seconds", job="metrics test job") == 45
    assert value(after, "qianbao_database_up") == 1
    # Labels never carry a number, only where it is.
    assert (
        "7911123456"
        not in scraped.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).text
    )


@pytest.mark.parametrize(
    "authorization", [None, "Bearer wrong-token", f"Basic {TOKEN}", f"Bearer {TOKEN}x"]
)
def test_metrics_are_refused_without_the_token(
    scraped: TestClient, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    answer = scraped.get("/metrics", headers=headers)
    assert answer.status_code == 401 and answer.headers["WWW-Authenticate"] == "Bearer"
    assert answer.json()["code"] == "metrics.token" and "qianbao_" not in answer.text


def test_without_a_token_there_is_no_metrics_route(client: TestClient) -> None:
    assert client.get("/metrics", headers={"Authorization": "Bearer "}).status_code == 404


COUNT_ONE = "from qianbao.observability import metrics; metrics.rate_limit_refused('multi.test')"
SHOW = (
    "import sys; from qianbao.observability import metrics; "
    "sys.stdout.buffer.write(metrics.exposition())"
)


def test_several_processes_add_up_in_multiprocess_mode(tmp_path: Path) -> None:
    """What `qianbao serve --workers N` relies on: each process writes its own values to
    the shared folder, and a scrape in any process adds them up."""
    env = {**os.environ, metrics.MULTIPROC_ENV: str(tmp_path)}
    for _ in range(2):
        subprocess.run([sys.executable, "-c", COUNT_ONE], env=env, check=True)
    shown = subprocess.run(
        [sys.executable, "-c", SHOW], env=env, check=True, capture_output=True, text=True
    ).stdout
    families = {family.name: family for family in text_string_to_metric_families(shown)}
    assert value(families, "qianbao_rate_limit_refusals_total", rule="multi.test") == 2
