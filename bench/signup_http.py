"""Sign-ups per second through real HTTP, against real ``qianbao serve`` processes.

For each case (SQLite / PostgreSQL x 1 / 2 worker processes) this starts
``qianbao serve --demo`` on a free port of 127.0.0.1 with a fresh database, then
drives it with an ``httpx.AsyncClient`` at a fixed concurrency:

* the trivial ``GET /healthz`` (the baseline: what the stack costs per request), and
* whole sign-ups: ``POST /api/v1/auth/sms-codes`` -> ``GET /api/v1/demo/outbox`` (read
  the code) -> ``POST /api/v1/auth/sessions``; the latency is that of all three.

It prints (and writes to ``bench/results/signup_http.md``) sign-ups/s, healthz req/s,
their p50/p99 latencies, the ratio sign-ups/s / healthz req/s beside the goal, and every
non-2xx response or transport error seen. The client runs on the same cores as the
server (and as PostgreSQL): the header says how many there are.

    .venv/bin/python bench/signup_http.py            # full run (8 s or 300 sign-ups per case)
    .venv/bin/python bench/signup_http.py --quick    # smoke run
    .venv/bin/python bench/signup_http.py --backends sqlite --workers 2 --concurrency 32
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "bench" / "results"
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/qianbao_bench"
FORBIDDEN_DATABASES = {"test", "postgres", "template0", "template1"}
GOAL_RATIO = 0.3
COUNTRY = "GB"
# +44 790x xxx xxx: a valid UK mobile range; 7 free digits per sign-up.
NUMBER_PREFIX = "+44790"
NUMBER_SPACE = 10**7
NUMBER_STRIDE = 7_919  # coprime with NUMBER_SPACE: i -> base + i*stride never repeats
BIG_LIMIT = str(10**9)
RATE_LIMIT_ENV = (
    "QIANBAO_SMS_PER_IP_PER_HOUR",
    "QIANBAO_SMS_PER_IP_PER_DAY",
    "QIANBAO_SMS_PER_COUNTRY_PER_HOUR",
    "QIANBAO_SMS_PER_PREFIX_PER_HOUR",
    "QIANBAO_SMS_PER_NUMBER_PER_HOUR",
    "QIANBAO_SMS_PER_NUMBER_PER_DAY",
    "QIANBAO_SMS_COUNTRIES_PER_IP_PER_DAY",
    "QIANBAO_NUMBER_LOOKUPS_PER_IP_PER_HOUR",
)
READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 15.0
STATS_SETTLE_S = 1.5


# --- results -------------------------------------------------------------------------


@dataclass
class Phase:
    """One measured phase: successes, their latencies, and everything that went wrong."""

    ok: int = 0
    latencies_s: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    elapsed_s: float = 0.0
    client_cpu_s: float = 0.0
    server_cpu_s: float | None = None
    system_cpu_s: float | None = None

    @property
    def rate(self) -> float:
        return self.ok / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def percentile_ms(self, p: float) -> float:
        return percentile(self.latencies_s, p) * 1000.0

    @property
    def failures(self) -> int:
        return sum(self.errors.values())

    def client_cores(self) -> float:
        return self.client_cpu_s / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def server_cores(self) -> float | None:
        if self.server_cpu_s is None or self.elapsed_s <= 0:
            return None
        return self.server_cpu_s / self.elapsed_s

    def other_cores(self) -> float | None:
        """Cores busy with neither the server nor this client (PostgreSQL, anything else)."""
        if self.system_cpu_s is None or self.server_cpu_s is None or self.elapsed_s <= 0:
            return None
        other = self.system_cpu_s - self.server_cpu_s - self.client_cpu_s
        return max(0.0, other) / self.elapsed_s


@dataclass
class CaseResult:
    backend: str
    workers: int
    signup: Phase | None = None
    healthz: Phase | None = None
    step_latencies_s: dict[str, list[float]] = field(default_factory=dict)
    warmup_errors: Counter[str] = field(default_factory=Counter)
    server_log: Path | None = None
    server_log_errors: list[str] = field(default_factory=list)
    pg_transactions: tuple[int, int] | None = None  # commits, rollbacks in the sign-up phase
    skipped: str | None = None  # not run (PostgreSQL unreachable): not a failure
    failed: str | None = None  # the server did not start or the client broke: a failure

    @property
    def ratio(self) -> float | None:
        if self.signup is None or self.healthz is None or self.healthz.rate == 0:
            return None
        return self.signup.rate / self.healthz.rate


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (0 when there are no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100.0 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


# --- the server ----------------------------------------------------------------------


def clock_tick() -> int:
    return os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def system_cpu_seconds() -> float | None:
    """Busy CPU time of the whole machine, all cores (Linux /proc/stat)."""
    try:
        first = Path("/proc/stat").read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return None
    jiffies = [int(v) for v in first[1:9]]  # user nice system idle iowait irq softirq steal
    busy = sum(jiffies) - jiffies[3] - jiffies[4] - jiffies[7]
    return busy / clock_tick()


def load_average() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "?"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def server_env(database_url: str, var_dir: Path, secret_key: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QIANBAO_")}
    env.update(
        QIANBAO_DATABASE_URL=database_url,
        QIANBAO_VAR_DIR=str(var_dir),
        QIANBAO_SECRET_KEY=secret_key,
        QIANBAO_DEMO="true",
        QIANBAO_SMS_GATEWAY="outbox",
    )
    env.update(dict.fromkeys(RATE_LIMIT_ENV, BIG_LIMIT))
    return env


class Server:
    """``qianbao serve`` in its own process group (so its workers stop with it)."""

    def __init__(
        self, database_url: str, workers: int, work_dir: Path, log_path: Path, secret: str
    ) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = log_path.open("wb")
        command = [
            sys.executable, "-c", "from qianbao.cli import app; app()",
            "serve", "--host", "127.0.0.1", "--port", str(self.port),
            "--workers", str(workers), "--demo",
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command,
            cwd=work_dir,  # no stray .env, and relative paths land in the temp dir
            env=server_env(database_url, work_dir / "var", secret),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    async def wait_ready(self, client: httpx.AsyncClient) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"server exited with {self.process.returncode}; see {self.log_path}"
                )
            try:
                response = await client.get(f"{self.base_url}/readyz", timeout=2.0)
                if response.status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
        raise RuntimeError(f"server not ready after {READY_TIMEOUT_S:.0f} s; see {self.log_path}")

    def cpu_seconds(self) -> float | None:
        """CPU time of every live process in the server's session (Linux /proc)."""
        tick = clock_tick()
        total = 0
        try:
            entries = os.listdir("/proc")
        except OSError:
            return None
        for entry in entries:
            if not entry.isdigit():
                continue
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rfind(")") + 2 :].split()
            # fields[0] is field 3 (state); session id is field 6, utime/stime 14/15.
            if int(fields[3]) == self.process.pid:
                total += int(fields[11]) + int(fields[12])
        return total / tick

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except ProcessLookupError:
                pass
        # Workers that outlived the supervisor still belong to the group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self._log.close()


EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Failure|Warning)\b.*")


def log_errors(log_path: Path, limit: int = 10) -> list[str]:
    """What went wrong in the server's log: tracebacks, and each distinct error, counted."""
    try:
        lines = log_path.read_text(errors="replace").splitlines()
    except OSError:
        return []
    tracebacks = sum(1 for ln in lines if ln.startswith("Traceback"))
    counted = Counter(
        ln[:300] for ln in lines if EXCEPTION_LINE.match(ln) or ln.startswith("ERROR")
    )
    found = [f"{count} x {line}" for line, count in counted.most_common(limit)]
    if len(counted) > limit:
        found.append(f"... and {len(counted) - limit} other distinct lines")
    return ([f"{tracebacks} traceback(s)"] if tracebacks else []) + found


# --- databases -----------------------------------------------------------------------


def check_pg_name(url: str) -> str:
    name = make_url(url).database or ""
    if not name or name in FORBIDDEN_DATABASES:
        raise SystemExit(f"refusing to benchmark against database {name!r}; use a separate one")
    return name


def reset_postgres(url: str) -> None:
    """Create the bench database if missing, then drop and recreate its public schema."""
    name = check_pg_name(url)
    admin_url = make_url(url).set(database="postgres")
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            exists = conn.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
            ).scalar()
            if not exists:
                conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    finally:
        admin.dispose()
    bench = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with bench.connect() as conn:
            conn.exec_driver_sql("DROP SCHEMA IF EXISTS public CASCADE")
            conn.exec_driver_sql("CREATE SCHEMA public")
    finally:
        bench.dispose()


# --- the client ----------------------------------------------------------------------


class Numbers:
    """Distinct valid UK mobile numbers, spread over the range (not one prefix block)."""

    def __init__(self) -> None:
        self.base = secrets.randbelow(NUMBER_SPACE)
        self.next = 0

    def take(self) -> str:
        index = self.next
        self.next += 1
        if index >= NUMBER_SPACE:
            raise RuntimeError("out of numbers")
        return f"{NUMBER_PREFIX}{(self.base + index * NUMBER_STRIDE) % NUMBER_SPACE:07d}"


class StepFailed(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _expect(response: httpx.Response, step: str, status: int) -> None:
    if response.status_code != status:
        code = ""
        if response.headers.get("content-type", "").startswith("application/json"):
            body = response.json()
            if isinstance(body, dict):
                code = f" {body.get('code', '')}"
        raise StepFailed(f"{step} {response.status_code}{code}")


@dataclass
class SignupDriver:
    clients: list[httpx.AsyncClient]  # one per source address; task i uses clients[i % n]
    agreement_version: str
    numbers: Numbers
    steps: dict[str, list[float]] = field(default_factory=dict)

    def _time(self, step: str, started: float) -> None:
        self.steps.setdefault(step, []).append(time.perf_counter() - started)

    async def signup(self, task: int) -> None:
        client = self.clients[task % len(self.clients)]
        number = self.numbers.take()
        phone = {"country": COUNTRY, "number": number, "purpose": "signup"}
        t0 = time.perf_counter()
        sent = await client.post(
            "/api/v1/auth/sms-codes", json={**phone, "agreement_version": self.agreement_version}
        )
        self._time("sms-codes", t0)
        _expect(sent, "sms-codes", 201)
        length = int(sent.json()["code_length"])

        t1 = time.perf_counter()
        outbox = await client.get("/api/v1/demo/outbox", params={"phone": number})
        self._time("outbox", t1)
        _expect(outbox, "outbox", 200)
        code = None
        for message in outbox.json():
            found = re.search(rf"(?<!\d)(\d{{{length}}})(?!\d)", message["body"])
            if message["recipient"] == number and found:
                code = found.group(1)
                break
        if code is None:
            raise StepFailed("outbox no-code")

        t2 = time.perf_counter()
        signed = await client.post("/api/v1/auth/sessions", json={**phone, "code": code})
        self._time("sessions", t2)
        _expect(signed, "sessions", 201)
        if not signed.json().get("is_new_account"):
            raise StepFailed("sessions not-new-account")

    async def healthz(self, task: int) -> None:
        response = await self.clients[task % len(self.clients)].get("/healthz")
        _expect(response, "healthz", 200)


async def run_phase(
    operation: Callable[[int], Awaitable[None]],
    concurrency: int,
    duration_s: float,
    max_count: int,
    server: Server | None = None,
) -> Phase:
    """Run ``operation`` from ``concurrency`` tasks until the count or the time runs out."""
    phase = Phase()
    started = 0
    deadline = time.monotonic() + duration_s

    async def loop(task: int) -> None:
        nonlocal started
        while started < max_count and time.monotonic() < deadline:
            started += 1
            t0 = time.perf_counter()
            try:
                await operation(task)
            except StepFailed as failure:
                phase.errors[failure.key] += 1
                continue
            except httpx.HTTPError as error:
                phase.errors[f"transport {type(error).__name__}"] += 1
                continue
            phase.latencies_s.append(time.perf_counter() - t0)
            phase.ok += 1

    server_cpu0 = server.cpu_seconds() if server else None
    system_cpu0 = system_cpu_seconds()
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    await asyncio.gather(*(loop(task) for task in range(concurrency)))
    phase.elapsed_s = time.perf_counter() - t0
    phase.client_cpu_s = time.process_time() - cpu0
    system_cpu1 = system_cpu_seconds()
    server_cpu1 = server.cpu_seconds() if server else None
    if server_cpu0 is not None and server_cpu1 is not None:
        phase.server_cpu_s = server_cpu1 - server_cpu0
    if system_cpu0 is not None and system_cpu1 is not None:
        phase.system_cpu_s = system_cpu1 - system_cpu0
    return phase


def pg_transaction_counts(url: str) -> tuple[int, int] | None:
    """Commits and rollbacks PostgreSQL has counted for the bench database so far."""
    engine = create_engine(make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            row = conn.execute(
                text("SELECT xact_commit, xact_rollback FROM pg_stat_database WHERE datname = :n"),
                {"n": make_url(url).database},
            ).one_or_none()
    except Exception:  # statistics are a nicety; never fail the run for them
        return None
    finally:
        engine.dispose()
    return None if row is None else (int(row[0]), int(row[1]))


@dataclass
class Options:
    backends: list[str]
    workers: list[int]
    concurrency: int
    duration_s: float
    signups: int
    healthz: int
    warmup: int
    pg_url: str
    output: Path
    quick: bool
    source_ips: int = 1
    code: str = ""
    load_at_start: str = ""


def make_client(base_url: str, options: Options, index: int) -> httpx.AsyncClient:
    """A client whose connections come from 127.0.0.<index + 1> (one "IP" to the server)."""
    per_client = max(1, math.ceil(options.concurrency / options.source_ips))
    limits = httpx.Limits(max_connections=per_client, max_keepalive_connections=per_client)
    transport = httpx.AsyncHTTPTransport(limits=limits, local_address=f"127.0.0.{index + 1}")
    return httpx.AsyncClient(base_url=base_url, transport=transport, timeout=60.0)


async def run_case(backend: str, workers: int, options: Options, log_dir: Path) -> CaseResult:
    result = CaseResult(backend, workers)
    work_dir = Path(tempfile.mkdtemp(prefix=f"qianbao-bench-{backend}-{workers}w-"))
    if backend == "sqlite":
        database_url = f"sqlite:///{work_dir / 'bench.db'}"
    else:
        try:
            reset_postgres(options.pg_url)
        except Exception as error:  # a missing server skips the case
            result.skipped = f"PostgreSQL unavailable: {type(error).__name__}: {error}"
            shutil.rmtree(work_dir, ignore_errors=True)
            return result
        database_url = options.pg_url
    log_path = log_dir / f"server-{backend}-{workers}w.log"
    server = Server(database_url, workers, work_dir, log_path, secrets.token_urlsafe(48))
    try:
        async with contextlib.AsyncExitStack() as stack:
            clients = [
                await stack.enter_async_context(make_client(server.base_url, options, index))
                for index in range(options.source_ips)
            ]
            try:
                await server.wait_ready(clients[0])
            except RuntimeError as error:
                result.failed = str(error)
                return result
            agreement = await clients[0].get("/api/v1/agreement")
            agreement.raise_for_status()
            driver = SignupDriver(clients, str(agreement.json()["version"]), Numbers())

            # Warm-up (not measured): connection pools, imports, first queries.
            warm = await run_phase(driver.healthz, options.concurrency, 5.0, options.warmup * 4)
            result.warmup_errors.update(warm.errors)
            warm = await run_phase(driver.signup, options.concurrency, 10.0, options.warmup)
            result.warmup_errors.update(warm.errors)
            driver.steps.clear()

            result.healthz = await run_phase(
                driver.healthz, options.concurrency, options.duration_s, options.healthz, server
            )
            pg_before = None
            if backend == "postgres":
                await asyncio.sleep(STATS_SETTLE_S)  # backends flush statistics when idle
                pg_before = pg_transaction_counts(options.pg_url)
            result.signup = await run_phase(
                driver.signup, options.concurrency, options.duration_s, options.signups, server
            )
            result.step_latencies_s = driver.steps
            if pg_before is not None:
                await asyncio.sleep(STATS_SETTLE_S)
                pg_after = pg_transaction_counts(options.pg_url)
                if pg_after is not None:
                    result.pg_transactions = (
                        pg_after[0] - pg_before[0],
                        pg_after[1] - pg_before[1],
                    )
    finally:
        server.stop()
        result.server_log = log_path
        result.server_log_errors = log_errors(log_path)
        shutil.rmtree(work_dir, ignore_errors=True)
    return result


# --- the report ----------------------------------------------------------------------

HEADERS = [
    "backend", "workers", "sign-ups", "signups/s", "p50 ms", "p99 ms",
    "healthz req/s", "hz p50 ms", "hz p99 ms", "ratio", "goal", "met",
    "non-2xx su/hz", "CPU su srv/cli/oth", "CPU hz srv/cli/oth",
]  # fmt: skip


def _cores(phase: Phase) -> str:
    def show(value: float | None) -> str:
        return "?" if value is None else f"{value:.2f}"

    return f"{show(phase.server_cores())}/{phase.client_cores():.2f}/{show(phase.other_cores())}"


def table_rows(results: list[CaseResult]) -> list[list[str]]:
    rows = []
    for r in results:
        if r.skipped or r.failed or r.signup is None or r.healthz is None:
            state = "skipped" if r.skipped else "FAILED"
            rows.append([r.backend, str(r.workers), state, *[""] * (len(HEADERS) - 3)])
            continue
        ratio = r.ratio or 0.0
        rows.append([
            r.backend, str(r.workers), str(r.signup.ok),
            f"{r.signup.rate:.1f}", f"{r.signup.percentile_ms(50):.1f}",
            f"{r.signup.percentile_ms(99):.1f}",
            f"{r.healthz.rate:.0f}", f"{r.healthz.percentile_ms(50):.1f}",
            f"{r.healthz.percentile_ms(99):.1f}",
            f"{ratio:.3f}x", f">= {GOAL_RATIO:.2f}x", "yes" if ratio >= GOAL_RATIO else "no",
            f"{r.signup.failures}/{r.healthz.failures}",
            _cores(r.signup), _cores(r.healthz),
        ])  # fmt: skip
    return rows


def text_table(rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(HEADERS)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(HEADERS, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(lines)


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---:" for _ in headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def step_rows(results: list[CaseResult]) -> list[list[str]]:
    rows = []
    for r in results:
        for step in ("sms-codes", "outbox", "sessions"):
            values = r.step_latencies_s.get(step, [])
            if values:
                rows.append([
                    r.backend, str(r.workers), step, str(len(values)),
                    f"{percentile(values, 50) * 1000:.1f}", f"{percentile(values, 99) * 1000:.1f}",
                ])  # fmt: skip
    return rows


def problem_lines(results: list[CaseResult]) -> list[str]:
    lines = []
    for r in results:
        name = f"{r.backend} {r.workers}w"
        if r.skipped:
            lines.append(f"{name}: skipped ({r.skipped})")
            continue
        if r.failed:
            lines.append(f"{name}: FAILED: {r.failed}")
        for label, counter in (
            ("warm-up", r.warmup_errors),
            ("sign-up", r.signup.errors if r.signup else Counter()),
            ("healthz", r.healthz.errors if r.healthz else Counter()),
        ):
            for key, count in counter.most_common():
                lines.append(f"{name}: {label}: {count} x {key}")
        for line in r.server_log_errors:
            lines.append(f"{name}: server log: {line}")
    return lines


def note_lines(results: list[CaseResult]) -> list[str]:
    lines = []
    for r in results:
        if r.signup is not None and r.healthz is not None and r.signup.ok and r.healthz.ok:
            lines.append(
                f"{r.backend} {r.workers}w: client CPU per operation: "
                f"{r.healthz.client_cpu_s / r.healthz.ok * 1000:.2f} ms per healthz, "
                f"{r.signup.client_cpu_s / r.signup.ok * 1000:.2f} ms per sign-up (3 requests)"
            )
        if r.pg_transactions is not None and r.signup is not None:
            commits, rollbacks = r.pg_transactions
            per = rollbacks / r.signup.ok if r.signup.ok else 0.0
            lines.append(
                f"{r.backend} {r.workers}w: PostgreSQL during the sign-up phase: {commits} "
                f"commits, {rollbacks} rollbacks ({per:.2f} per sign-up; serialization "
                "retries and refused requests roll back)"
            )
    return lines


def code_version() -> str:
    """The commit measured, and whether the working tree differed from it."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", "qianbao"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        return "unknown (no git)"
    if not changed:
        return f"{head} (clean)"
    return f"{head} + uncommitted changes in {len(changed)} file(s) of qianbao/"


def header_lines(options: Options) -> list[str]:
    cores = os.cpu_count() or 0
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    mode = "quick" if options.quick else "full"
    return [
        f"qianbao sign-up over HTTP ({mode}), {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC",
        f"CPU cores: {cores} (usable: {affinity}); the client, the server workers and "
        "PostgreSQL all share them.",
        f"python {platform.python_version()}, {platform.platform()}; code: {options.code}",
        f"client: httpx.AsyncClient, concurrency {options.concurrency}, "
        f"source IPs {options.source_ips} (127.0.0.1..{options.source_ips}), per case: healthz "
        f"{options.duration_s:g} s or {options.healthz} requests, then sign-ups "
        f"{options.duration_s:g} s or {options.signups}, whichever first "
        f"(after {options.warmup} warm-up sign-ups)",
        "sign-up = POST /api/v1/auth/sms-codes + GET /api/v1/demo/outbox + "
        "POST /api/v1/auth/sessions; latency is of all three.",
        "CPU columns: cores busy during the phase: the server's processes / this client / "
        "everything else on the machine (PostgreSQL's backends, other people's jobs).",
        f"load average (1, 5, 15 min) at the start: {options.load_at_start}",
    ]


def report(options: Options, results: list[CaseResult]) -> str:
    rows = table_rows(results)
    problems = problem_lines(results)
    notes = [*note_lines(results), f"load average at the end: {load_average()}"]
    printed = [
        *header_lines(options), "", text_table(rows), "",
        *notes, "",
        "non-2xx responses and errors: " + ("none" if not problems else ""),
        *(f"  {line}" for line in problems),
    ]  # fmt: skip
    markdown = [
        "# Sign-up over HTTP", "",
        *(f"- {line}" for line in header_lines(options)), "",
        markdown_table(HEADERS, rows), "",
        *(f"- {line}" for line in notes), "",
        "## Per step (sign-up phase)", "",
        markdown_table(["backend", "workers", "step", "n", "p50 ms", "p99 ms"], step_rows(results)),
        "",
        "## Non-2xx responses and errors", "",
        *(f"- {line}" for line in problems or ["none"]), "",
    ]  # fmt: skip
    options.output.parent.mkdir(parents=True, exist_ok=True)
    options.output.write_text("\n".join(markdown))
    return "\n".join(printed)


# --- main ----------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="short smoke run")
    parser.add_argument("--backends", default="sqlite,postgres", help="sqlite,postgres")
    parser.add_argument("--workers", default="1,2", help="worker processes per case, e.g. 1,2")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight")
    parser.add_argument("--duration", type=float, default=None, help="seconds per phase (8)")
    parser.add_argument("--signups", type=int, default=None, help="sign-ups per case (300)")
    parser.add_argument("--healthz", type=int, default=None, help="healthz per case (20000)")
    parser.add_argument("--warmup", type=int, default=None, help="warm-up sign-ups (32)")
    parser.add_argument(
        "--source-ips", type=int, default=1,
        help="spread the client over 127.0.0.1..N, so the server sees N client IPs (1)",
    )  # fmt: skip
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL, help="the bench database")
    parser.add_argument("--output", type=Path, default=RESULTS_DIR / "signup_http.md")
    args = parser.parse_args(argv)
    quick: bool = args.quick
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = set(backends) - {"sqlite", "postgres"}
    if unknown:
        parser.error(f"unknown backend(s): {', '.join(sorted(unknown))}")
    if "postgres" in backends:
        check_pg_name(args.pg_url)
    workers = [int(w) for w in args.workers.split(",") if w.strip()]
    if args.concurrency < 1 or any(w < 1 for w in workers):
        parser.error("--concurrency and --workers must be at least 1")
    if not 1 <= args.source_ips <= min(args.concurrency, 254):
        parser.error("--source-ips must be between 1 and min(--concurrency, 254)")
    return Options(
        backends=backends,
        workers=workers,
        concurrency=args.concurrency,
        duration_s=args.duration if args.duration is not None else (2.0 if quick else 8.0),
        signups=args.signups if args.signups is not None else (40 if quick else 300),
        healthz=args.healthz if args.healthz is not None else (2_000 if quick else 20_000),
        warmup=args.warmup if args.warmup is not None else (8 if quick else 32),
        pg_url=args.pg_url,
        output=args.output,
        quick=quick,
        source_ips=args.source_ips,
    )


async def main_async(options: Options) -> list[CaseResult]:
    results = []
    log_dir = options.output.parent / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    for backend in options.backends:
        for workers in options.workers:
            print(f"... {backend}, {workers} worker(s)", file=sys.stderr, flush=True)
            results.append(await run_case(backend, workers, options, log_dir))
    return results


def case_failed(r: CaseResult) -> bool:
    if r.skipped is not None:
        return False
    if r.failed is not None or r.signup is None or r.healthz is None:
        return True
    return bool(r.signup.failures or r.healthz.failures or r.warmup_errors)


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    options.load_at_start = load_average()
    options.code = code_version()
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        runner = asyncio.Runner()
    with runner:
        results = runner.run(main_async(options))
    print(report(options, results))
    print(f"\nwritten: {options.output}  (server logs: {options.output.parent / 'logs'})")
    failed = any(case_failed(r) for r in results)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
