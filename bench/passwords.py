"""Login-password cost: argon2id verification time, and password logins per second over HTTP.

Part 1 (``argon2``): the time of one ``verify_secret`` (``qianbao.identity.passwords``,
argon2id through argon2-cffi), called serially from one thread, for the configured
defaults and a few published alternatives, with the memory each takes (measured as the
peak-RSS growth of a child process doing one hash + verify). It prints which settings
verify in 50-250 ms on this machine (the range usually aimed at for interactive logins)
and where the current defaults fall.

Part 2 (``http``): password logins per second against real ``qianbao serve --demo``
processes (SQLite / PostgreSQL x 1 / 2 workers; the server machinery is that of
``signup_http.py``), beside ``GET /healthz`` of the same server at the same concurrency.
Before timing, N accounts sign up over the API and each sets a login password (security
code by SMS, read from the demo outbox, then ``PUT /api/v1/me/login-password``); then
``POST /api/v1/auth/password-sessions`` runs round-robin over those accounts. Only wrong
passwords are throttled, so these are not.

    .venv/bin/python bench/passwords.py            # full run (30 verifies, 8 s per phase)
    .venv/bin/python bench/passwords.py --quick    # smoke run
    .venv/bin/python bench/passwords.py --parts argon2
    .venv/bin/python bench/passwords.py --parts http --backends sqlite --server-cost 2,19456,1
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx

from qianbao.identity import passwords
from qianbao.settings import Settings

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

import signup_http  # noqa: E402
from signup_http import (  # noqa: E402
    COUNTRY,
    DEFAULT_PG_URL,
    RESULTS_DIR,
    Numbers,
    Phase,
    Server,
    StepFailed,
    _expect,
    check_pg_name,
    code_version,
    load_average,
    log_errors,
    markdown_table,
    percentile,
    pg_transaction_counts,
    reset_postgres,
    run_phase,
)

TARGET_MS = (50.0, 250.0)
MIB = 1024
PASSWORD = "tea with plenty of milk"
SETUP_TIMEOUT_S = 300.0


# --- part 1: argon2id cost ----------------------------------------------------------


@dataclass(frozen=True)
class Cost:
    label: str
    time_cost: int
    memory_kib: int
    parallelism: int
    source: str

    def short(self) -> str:
        return f"t={self.time_cost} m={self.memory_kib / MIB:g} MiB p={self.parallelism}"

    def settings(self) -> Settings:
        return Settings(
            argon2_time_cost=self.time_cost,
            argon2_memory_kib=self.memory_kib,
            argon2_parallelism=self.parallelism,
        )


def default_cost() -> Cost:
    """The defaults in ``qianbao.settings`` (not whatever a .env or the environment sets)."""
    fields = Settings.model_fields
    return Cost(
        "defaults",
        int(fields["argon2_time_cost"].default),
        int(fields["argon2_memory_kib"].default),
        int(fields["argon2_parallelism"].default),
        "qianbao.settings",
    )


def candidate_costs(with_2gib: bool) -> list[Cost]:
    costs = [
        default_cost(),
        Cost("owasp-min", 2, 19 * MIB, 1, "OWASP cheat sheet minimum (m=19 MiB, t=2, p=1)"),
        Cost("owasp-46", 1, 46 * MIB, 1, "OWASP cheat sheet first option (m=46 MiB, t=1, p=1)"),
        Cost("46-t2", 2, 46 * MIB, 1, "m=46 MiB with t=2 (one step above OWASP's)"),
        Cost("rfc9106-2nd", 3, 64 * MIB, 4, "RFC 9106 second recommendation; argon2-cffi default"),
    ]
    if with_2gib:
        costs.append(Cost("rfc9106-1st", 1, 2048 * MIB, 4, "RFC 9106 first recommendation"))
    return costs


SKIPPED_2GIB = Cost(
    "rfc9106-1st", 1, 2048 * MIB, 4, "RFC 9106 first recommendation; 2 GiB per login in flight"
)


@dataclass
class CostResult:
    cost: Cost
    wall_s: list[float] = field(default_factory=list)
    cpu_s: list[float] = field(default_factory=list)
    rss_growth_kib: int | None = None
    skipped: str | None = None

    def p50_ms(self) -> float:
        return percentile(self.wall_s, 50) * 1000.0

    def p99_ms(self) -> float:
        return percentile(self.wall_s, 99) * 1000.0

    def cpu_p50_ms(self) -> float:
        return percentile(self.cpu_s, 50) * 1000.0

    def in_target(self) -> bool:
        return bool(self.wall_s) and TARGET_MS[0] <= self.p50_ms() <= TARGET_MS[1]


# One verification in a fresh interpreter, of a hash made here: the growth of its peak
# RSS is what the verification allocated (argon2 fills every block of its memory matrix).
# VmHWM, not ru_maxrss: on Linux a child's ru_maxrss starts at its parent's peak.
MEMORY_PROBE = """
import sys
from argon2 import PasswordHasher
def peak_kib():
    with open("/proc/self/status") as status:
        return next(int(ln.split()[1]) for ln in status if ln.startswith("VmHWM:"))
before = peak_kib()
assert PasswordHasher().verify(sys.argv[1], sys.argv[2])
print(peak_kib() - before)
"""


def rss_growth_kib(stored: str) -> int | None:
    """Peak-RSS growth (KiB; Linux /proc) of verifying ``stored`` in a child process."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", MEMORY_PROBE, stored, PASSWORD],
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        return int(done.stdout.strip())
    except (OSError, subprocess.SubprocessError, ValueError):
        return None


def time_verify(cost: Cost, runs: int, warmup: int = 2) -> CostResult:
    """``runs`` serial verifications of a correct password, after ``warmup`` untimed ones."""
    settings = cost.settings()
    stored = passwords.hash_secret(settings, PASSWORD)
    result = CostResult(cost)
    for index in range(warmup + runs):
        c0, t0 = time.process_time(), time.perf_counter()
        ok = passwords.verify_secret(settings, stored, PASSWORD)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        if not ok:
            raise RuntimeError(f"verification failed for {cost.short()}")
        if index >= warmup:
            result.wall_s.append(wall)
            result.cpu_s.append(cpu)  # every thread of this process: p>1 lanes count too
    result.rss_growth_kib = rss_growth_kib(stored)
    return result


def run_argon2(options: Options) -> list[CostResult]:
    results = []
    for cost in candidate_costs(options.with_2gib):
        print(f"... argon2id {cost.label}: {cost.short()}", file=sys.stderr, flush=True)
        results.append(time_verify(cost, options.runs))
    if not options.with_2gib:
        results.append(
            CostResult(
                SKIPPED_2GIB,
                skipped="skipped (--with-2gib)",
            )
        )
    return results


ARGON2_HEADERS = [
    "setting", "t", "m MiB", "p", "verify p50 ms", "p99 ms", "p50 vs defaults",
    "CPU ms/verify", "CPU/wall", "verifies/s/core", "RSS +MiB", "50-250 ms", "source",
]  # fmt: skip


def argon2_rows(results: list[CostResult]) -> list[list[str]]:
    base = next((r for r in results if r.cost.label == "defaults" and r.wall_s), None)
    rows = []
    for r in results:
        c = r.cost
        head = [c.label, str(c.time_cost), f"{c.memory_kib / MIB:g}", str(c.parallelism)]
        if r.skipped or not r.wall_s:
            rows.append([*head, r.skipped or "no data", *[""] * 7, c.source])
            continue
        ratio = f"{r.p50_ms() / base.p50_ms():.2f}x" if base else "?"
        cpu = r.cpu_p50_ms()
        rss = "?" if r.rss_growth_kib is None else f"{r.rss_growth_kib / MIB:.0f}"
        rows.append([
            *head, f"{r.p50_ms():.1f}", f"{r.p99_ms():.1f}", ratio,
            f"{cpu:.1f}", f"{cpu / r.p50_ms():.2f}",
            f"{1000.0 / cpu:.1f}" if cpu > 0 else "?", rss,
            "yes" if r.in_target() else ("below" if r.p50_ms() < TARGET_MS[0] else "above"),
            c.source,
        ])  # fmt: skip
    return rows


def recommendation_lines(results: list[CostResult]) -> list[str]:
    measured = [r for r in results if r.wall_s]
    inside = [r for r in measured if r.in_target()]
    lines = []
    if inside:
        names = ", ".join(f"{r.cost.label} ({r.cost.short()}: {r.p50_ms():.0f} ms)" for r in inside)
        most = max(r.cost.memory_kib for r in inside)
        hardest = [r for r in inside if r.cost.memory_kib == most]
        # A tie keeps the current defaults; else the quickest of the most memory-hard.
        best = next(
            (r for r in hardest if r.cost.label == "defaults"),
            min(hardest, key=lambda r: r.p50_ms()),
        )
        lines.append(
            f"recommendation: verification in {TARGET_MS[0]:.0f}-{TARGET_MS[1]:.0f} ms (p50) "
            f"on this machine: {names}. Of these the most memory-hard (memory is what slows "
            f"GPU/ASIC guessing): {best.cost.label} ({best.cost.short()})."
        )
    else:
        lines.append(
            f"recommendation: no measured setting verifies in "
            f"{TARGET_MS[0]:.0f}-{TARGET_MS[1]:.0f} ms (p50) on this machine; see the table."
        )
    base = next((r for r in measured if r.cost.label == "defaults"), None)
    if base is not None:
        where = (
            "inside" if base.in_target() else ("below" if base.p50_ms() < TARGET_MS[0] else "above")
        )
        lines.append(
            f"current defaults ({base.cost.short()}): p50 {base.p50_ms():.1f} ms, p99 "
            f"{base.p99_ms():.1f} ms, CPU {base.cpu_p50_ms():.1f} ms per verification: {where} "
            f"the {TARGET_MS[0]:.0f}-{TARGET_MS[1]:.0f} ms range."
        )
    lines.append(
        "CPU/wall: cores one verification kept busy. p > 1 lanes shorten the wall time only "
        "while cores are idle; under load (many logins at once, other jobs) they run one "
        "after another, so capacity follows CPU ms (verifies/s/core), not wall time."
    )
    lines.append(
        "memory: each login in flight holds its m for the whole verification, so a server "
        "needs about m x (logins in flight) on top of its usual footprint."
    )
    return lines


# --- part 2: password logins over HTTP ---------------------------------------------


def install_server_env(extra: dict[str, str]) -> None:
    """Make ``signup_http.Server`` start its servers with ``extra`` in the environment.

    ``Server`` builds its environment with ``signup_http.server_env``; this wraps that
    function (looked up when each server starts) instead of copying ``Server``.
    """
    base = signup_http.server_env

    def server_env(database_url: str, var_dir: Path, secret_key: str) -> dict[str, str]:
        return {**base(database_url, var_dir, secret_key), **extra}

    signup_http.server_env = server_env


def extra_server_env(options: Options) -> dict[str, str]:
    # Each account gets a sign-up code and, right after, a security code: without this
    # the second would wait for the 60 s resend cool-down of the number.
    env = {"QIANBAO_SMS_RESEND_COOLDOWN_SECONDS": "0"}
    if options.server_cost is not None:
        t, m, p = options.server_cost
        env.update(
            QIANBAO_ARGON2_TIME_COST=str(t),
            QIANBAO_ARGON2_MEMORY_KIB=str(m),
            QIANBAO_ARGON2_PARALLELISM=str(p),
        )
    return env


@dataclass(frozen=True)
class Account:
    number: str
    password: str


CODE_IN_BODY = "(?<!\\d)(\\d{{{length}}})(?!\\d)"


@dataclass
class PasswordDriver:
    client: httpx.AsyncClient
    agreement_version: str
    numbers: Numbers
    accounts: list[Account] = field(default_factory=list)
    next_login: int = 0

    async def _newest_code(self, number: str, length: int) -> str:
        """The newest code the demo outbox holds for ``number`` (it lists newest first)."""
        outbox = await self.client.get("/api/v1/demo/outbox", params={"phone": number})
        _expect(outbox, "outbox", 200)
        pattern = re.compile(CODE_IN_BODY.format(length=length))
        for message in outbox.json():
            found = pattern.search(message["body"])
            if message["recipient"] == number and found:
                return found.group(1)
        raise StepFailed("outbox no-code")

    async def account_with_password(self, _task: int) -> None:
        """Sign up a new number, then set its login password with a security code."""
        number = self.numbers.take()
        phone = {"country": COUNTRY, "number": number, "purpose": "signup"}
        sent = await self.client.post(
            "/api/v1/auth/sms-codes", json={**phone, "agreement_version": self.agreement_version}
        )
        _expect(sent, "sms-codes", 201)
        code = await self._newest_code(number, int(sent.json()["code_length"]))
        signed = await self.client.post("/api/v1/auth/sessions", json={**phone, "code": code})
        _expect(signed, "sessions", 201)
        bearer = {"Authorization": f"Bearer {signed.json()['token']}"}

        asked = await self.client.post("/api/v1/me/security-codes", headers=bearer)
        _expect(asked, "security-codes", 201)
        security_code = await self._newest_code(number, int(asked.json()["code_length"]))
        password = f"{PASSWORD} {len(self.accounts) + 1:03d}"
        saved = await self.client.put(
            "/api/v1/me/login-password",
            headers=bearer,
            json={"new_password": password, "sms_code": security_code},
        )
        _expect(saved, "login-password", 204)
        self.accounts.append(Account(number, password))

    async def login(self, _task: int) -> None:
        account = self.accounts[self.next_login % len(self.accounts)]
        self.next_login += 1
        body = {"login": account.number, "country": COUNTRY, "password": account.password}
        signed = await self.client.post("/api/v1/auth/password-sessions", json=body)
        _expect(signed, "password-sessions", 201)
        if not signed.json().get("token"):
            raise StepFailed("password-sessions no-token")

    async def healthz(self, _task: int) -> None:
        _expect(await self.client.get("/healthz"), "healthz", 200)


@dataclass
class LoginCase:
    backend: str
    workers: int
    accounts: int = 0
    setup_s: float = 0.0
    setup_errors: Counter[str] = field(default_factory=Counter)
    warmup_errors: Counter[str] = field(default_factory=Counter)
    healthz: Phase | None = None
    logins: Phase | None = None
    server_log_errors: list[str] = field(default_factory=list)
    pg_transactions: tuple[int, int] | None = None
    skipped: str | None = None
    failed: str | None = None

    @property
    def ratio(self) -> float | None:
        if self.logins is None or self.healthz is None or self.healthz.rate == 0:
            return None
        return self.logins.rate / self.healthz.rate

    def broken(self) -> bool:
        if self.skipped is not None:
            return False
        if self.failed is not None or self.logins is None or self.healthz is None:
            return True
        return bool(
            self.setup_errors or self.warmup_errors or self.logins.failures or self.healthz.failures
        )


def make_client(base_url: str, concurrency: int) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    return httpx.AsyncClient(base_url=base_url, limits=limits, timeout=120.0)


async def run_login_case(backend: str, workers: int, options: Options) -> LoginCase:
    case = LoginCase(backend, workers)
    work_dir = Path(tempfile.mkdtemp(prefix=f"qianbao-bench-pw-{backend}-{workers}w-"))
    if backend == "sqlite":
        database_url = f"sqlite:///{work_dir / 'bench.db'}"
    else:
        try:
            reset_postgres(options.pg_url)
        except Exception as error:  # a missing server skips the case
            case.skipped = f"PostgreSQL unavailable: {type(error).__name__}: {error}"
            shutil.rmtree(work_dir, ignore_errors=True)
            return case
        database_url = options.pg_url
    log_dir = options.output.parent / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"passwords-{backend}-{workers}w.log"
    server = Server(database_url, workers, work_dir, log_path, secrets.token_urlsafe(48))
    try:
        async with make_client(server.base_url, options.concurrency) as client:
            try:
                await server.wait_ready(client)
            except RuntimeError as error:
                case.failed = str(error)
                return case
            agreement = await client.get("/api/v1/agreement")
            agreement.raise_for_status()
            driver = PasswordDriver(client, str(agreement.json()["version"]), Numbers())

            t0 = time.perf_counter()
            setup = await run_phase(
                driver.account_with_password,
                min(options.concurrency, options.accounts),
                SETUP_TIMEOUT_S,
                options.accounts,
            )
            case.setup_s = time.perf_counter() - t0
            case.setup_errors.update(setup.errors)
            case.accounts = len(driver.accounts)
            if not driver.accounts:
                case.failed = "no account got a login password; see the set-up errors"
                return case

            # Warm-up (not measured): pools, imports, each account's first login.
            warm = await run_phase(driver.healthz, options.concurrency, 3.0, 500)
            case.warmup_errors.update(warm.errors)
            warm = await run_phase(driver.login, options.concurrency, 15.0, len(driver.accounts))
            case.warmup_errors.update(warm.errors)

            case.healthz = await run_phase(
                driver.healthz, options.concurrency, options.duration_s, options.healthz, server
            )
            pg_before = None
            if backend == "postgres":
                await asyncio.sleep(signup_http.STATS_SETTLE_S)
                pg_before = pg_transaction_counts(options.pg_url)
            case.logins = await run_phase(
                driver.login, options.concurrency, options.duration_s, options.logins, server
            )
            if pg_before is not None:
                await asyncio.sleep(signup_http.STATS_SETTLE_S)
                pg_after = pg_transaction_counts(options.pg_url)
                if pg_after is not None:
                    case.pg_transactions = (pg_after[0] - pg_before[0], pg_after[1] - pg_before[1])
    finally:
        server.stop()
        case.server_log_errors = log_errors(log_path)
        shutil.rmtree(work_dir, ignore_errors=True)
    return case


async def run_http(options: Options) -> list[LoginCase]:
    install_server_env(extra_server_env(options))
    cases = []
    for backend in options.backends:
        for workers in options.workers:
            print(f"... logins: {backend}, {workers} worker(s)", file=sys.stderr, flush=True)
            cases.append(await run_login_case(backend, workers, options))
    return cases


HTTP_HEADERS = [
    "backend", "workers", "accounts", "logins", "logins/s", "p50 ms", "p99 ms",
    "healthz req/s", "hz p50 ms", "hz p99 ms", "ratio", "non-2xx login/hz",
    "srv CPU ms/login", "CPU login srv/cli/oth", "CPU hz srv/cli/oth",
]  # fmt: skip


def _cores(phase: Phase) -> str:
    def show(value: float | None) -> str:
        return "?" if value is None else f"{value:.2f}"

    return f"{show(phase.server_cores())}/{phase.client_cores():.2f}/{show(phase.other_cores())}"


def http_rows(cases: list[LoginCase]) -> list[list[str]]:
    rows = []
    for c in cases:
        if c.skipped or c.failed or c.logins is None or c.healthz is None:
            state = "skipped" if c.skipped else "FAILED"
            rows.append([c.backend, str(c.workers), state, *[""] * (len(HTTP_HEADERS) - 3)])
            continue
        srv = c.logins.server_cpu_s
        per_login = f"{srv / c.logins.ok * 1000:.1f}" if srv is not None and c.logins.ok else "?"
        rows.append([
            c.backend, str(c.workers), str(c.accounts), str(c.logins.ok),
            f"{c.logins.rate:.2f}", f"{c.logins.percentile_ms(50):.1f}",
            f"{c.logins.percentile_ms(99):.1f}",
            f"{c.healthz.rate:.0f}", f"{c.healthz.percentile_ms(50):.1f}",
            f"{c.healthz.percentile_ms(99):.1f}",
            f"{c.ratio or 0.0:.4f}x", f"{c.logins.failures}/{c.healthz.failures}",
            per_login, _cores(c.logins), _cores(c.healthz),
        ])  # fmt: skip
    return rows


def http_notes(cases: list[LoginCase], argon2: list[CostResult], options: Options) -> list[str]:
    lines = []
    cost = server_cost_label(options)
    base = next((r for r in argon2 if r.cost.label == "defaults" and r.wall_s), None)
    if base is not None and base.cpu_p50_ms() > 0 and options.server_cost is None:
        cores = usable_cores()
        lines.append(
            f"argon2 alone (part 1, same run): {base.p50_ms():.0f} ms wall and "
            f"{base.cpu_p50_ms():.0f} ms CPU per verification, so at most about "
            f"{cores * 1000 / base.cpu_p50_ms():.1f} logins/s on {cores} idle cores, and "
            f"{1000 / base.p50_ms():.1f}/s where logins run one at a time."
        )
    for c in cases:
        if c.skipped or c.failed:
            continue
        lines.append(
            f"{c.backend} {c.workers}w: set-up of {c.accounts} accounts (sign-up + security "
            f"code + set password) took {c.setup_s:.1f} s; server argon2 cost: {cost}"
        )
        if c.pg_transactions is not None and c.logins is not None:
            commits, rollbacks = c.pg_transactions
            lines.append(
                f"{c.backend} {c.workers}w: PostgreSQL during the login phase: {commits} commits, "
                f"{rollbacks} rollbacks"
            )
    return lines


def http_problems(cases: list[LoginCase]) -> list[str]:
    lines = []
    for c in cases:
        name = f"{c.backend} {c.workers}w"
        if c.skipped:
            lines.append(f"{name}: skipped ({c.skipped})")
            continue
        if c.failed:
            lines.append(f"{name}: FAILED: {c.failed}")
        for label, counter in (
            ("set-up", c.setup_errors),
            ("warm-up", c.warmup_errors),
            ("login", c.logins.errors if c.logins else Counter()),
            ("healthz", c.healthz.errors if c.healthz else Counter()),
        ):
            for key, count in counter.most_common():
                lines.append(f"{name}: {label}: {count} x {key}")
        for line in c.server_log_errors:
            lines.append(f"{name}: server log: {line}")
    return lines


# --- the report ----------------------------------------------------------------------


def usable_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def server_cost_label(options: Options) -> str:
    if options.server_cost is None:
        return f"defaults ({default_cost().short()})"
    t, m, p = options.server_cost
    return f"t={t} m={m / MIB:g} MiB p={p} (--server-cost)"


def text_table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(lines)


def header_lines(options: Options) -> list[str]:
    mode = "quick" if options.quick else "full"
    lines = [
        f"qianbao login passwords ({mode}), {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC",
        f"CPU cores: {os.cpu_count()} (usable: {usable_cores()}); python "
        f"{platform.python_version()}, {platform.platform()}; code: {options.code}",
        f"load average (1, 5, 15 min) at the start: {options.load_at_start} "
        "(other jobs on the machine inflate every figure; compare runs at similar load)",
    ]
    if "argon2" in options.parts:
        lines.append(
            f"argon2id: {options.runs} serial verify_secret() calls per setting (after 2 "
            "untimed), one calling thread; CPU counts every thread of the process (p lanes); "
            "RSS +MiB: peak-RSS growth of a child process doing one verification."
        )
    if "http" in options.parts:
        lines.append(
            f"HTTP: qianbao serve --demo, server argon2 cost {server_cost_label(options)}; "
            f"{options.accounts} accounts set up first; then per case healthz for "
            f"{options.duration_s:g} s, then password logins (POST /api/v1/auth/"
            f"password-sessions, round-robin over the accounts) for {options.duration_s:g} s; "
            f"client concurrency {options.concurrency} (httpx.AsyncClient, same machine)."
        )
        lines.append(
            "CPU columns: cores busy in the phase: the server's processes / this client / "
            "everything else (PostgreSQL, other jobs). srv CPU ms/login: server CPU per login."
        )
    return lines


def report(options: Options, argon2: list[CostResult], cases: list[LoginCase]) -> str:
    printed = [*header_lines(options), ""]
    markdown = ["# Login passwords", "", *(f"- {line}" for line in header_lines(options)), ""]
    if argon2:
        rows = argon2_rows(argon2)
        advice = recommendation_lines(argon2)
        printed += ["argon2id verification", text_table(ARGON2_HEADERS, rows), "", *advice, ""]
        markdown += [
            "## argon2id verification", "", markdown_table(ARGON2_HEADERS, rows), "",
            *(f"- {line}" for line in advice), "",
        ]  # fmt: skip
    if "http" in options.parts:
        rows = http_rows(cases)
        notes = [*http_notes(cases, argon2, options), f"load average at the end: {load_average()}"]
        problems = http_problems(cases)
        printed += [
            "password logins over HTTP (ratio = logins/s / healthz req/s)",
            text_table(HTTP_HEADERS, rows), "", *notes, "",
            "non-2xx responses and errors: " + ("none" if not problems else ""),
            *(f"  {line}" for line in problems),
        ]  # fmt: skip
        markdown += [
            "## Password logins over HTTP", "",
            "ratio = logins/s / healthz req/s of the same server.", "",
            markdown_table(HTTP_HEADERS, rows), "",
            *(f"- {line}" for line in notes), "",
            "## Non-2xx responses and errors", "",
            *(f"- {line}" for line in problems or ["none"]), "",
        ]  # fmt: skip
    else:
        printed.append(f"load average at the end: {load_average()}")
    options.output.parent.mkdir(parents=True, exist_ok=True)
    options.output.write_text("\n".join(markdown))
    return "\n".join(printed)


# --- main ----------------------------------------------------------------------------


@dataclass
class Options:
    parts: list[str]
    runs: int
    with_2gib: bool
    backends: list[str]
    workers: list[int]
    concurrency: int
    accounts: int
    duration_s: float
    logins: int
    healthz: int
    server_cost: tuple[int, int, int] | None
    pg_url: str
    output: Path
    quick: bool
    code: str = ""
    load_at_start: str = ""


def _split(value: str, convert: Callable[[str], object] = str) -> list[str]:
    parts = [v.strip() for v in value.split(",") if v.strip()]
    for part in parts:
        convert(part)
    return parts


def parse_args(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="short smoke run")
    parser.add_argument("--parts", default="argon2,http", help="argon2,http")
    parser.add_argument("--runs", type=int, default=None, help="verifications per setting (30)")
    parser.add_argument(
        "--with-2gib", action="store_true",
        help="also time RFC 9106's first recommendation (t=1, m=2 GiB, p=4)",
    )  # fmt: skip
    parser.add_argument("--backends", default="sqlite,postgres", help="sqlite,postgres")
    parser.add_argument("--workers", default="1,2", help="worker processes per case, e.g. 1,2")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight (8)")
    parser.add_argument("--accounts", type=int, default=None, help="accounts to log in (32)")
    parser.add_argument("--duration", type=float, default=None, help="seconds per phase (8)")
    parser.add_argument("--logins", type=int, default=100_000, help="most logins per case")
    parser.add_argument("--healthz", type=int, default=20_000, help="most healthz per case")
    parser.add_argument(
        "--server-cost", default=None, metavar="T,M_KIB,P",
        help="argon2 cost for the servers (QIANBAO_ARGON2_*); default: the settings' defaults",
    )  # fmt: skip
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL, help="the bench database")
    parser.add_argument("--output", type=Path, default=RESULTS_DIR / "passwords.md")
    args = parser.parse_args(argv)
    quick: bool = args.quick
    parts = _split(args.parts)
    if not parts or set(parts) - {"argon2", "http"}:
        parser.error("--parts takes argon2 and/or http")
    backends = _split(args.backends)
    if set(backends) - {"sqlite", "postgres"}:
        parser.error("--backends takes sqlite and/or postgres")
    if "http" in parts and "postgres" in backends:
        check_pg_name(args.pg_url)
    workers = [int(w) for w in _split(args.workers, int)]
    server_cost = None
    if args.server_cost is not None:
        values = [int(v) for v in _split(args.server_cost, int)]
        if len(values) != 3 or min(values) < 1:
            parser.error("--server-cost is T,M_KIB,P, e.g. 2,19456,1")
        server_cost = (values[0], values[1], values[2])
    runs = args.runs if args.runs is not None else (5 if quick else 30)
    accounts = args.accounts if args.accounts is not None else (8 if quick else 32)
    if runs < 1 or accounts < 1 or args.concurrency < 1 or any(w < 1 for w in workers):
        parser.error("--runs, --accounts, --concurrency and --workers must be at least 1")
    return Options(
        parts=parts,
        runs=runs,
        with_2gib=args.with_2gib,
        backends=backends,
        workers=workers,
        concurrency=args.concurrency,
        accounts=accounts,
        duration_s=args.duration if args.duration is not None else (2.0 if quick else 8.0),
        logins=args.logins,
        healthz=args.healthz,
        server_cost=server_cost,
        pg_url=args.pg_url,
        output=args.output,
        quick=quick,
    )


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    options.load_at_start = load_average()
    options.code = code_version()
    argon2 = run_argon2(options) if "argon2" in options.parts else []
    cases: list[LoginCase] = []
    if "http" in options.parts:
        try:
            import uvloop

            runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
        except ImportError:
            runner = asyncio.Runner()
        with runner:
            cases = runner.run(run_http(options))
    print(report(options, argon2, cases))
    print(f"\nwritten: {options.output}  (server logs: {options.output.parent / 'logs'})")
    return 1 if any(c.broken() for c in cases) else 0


if __name__ == "__main__":
    raise SystemExit(main())
