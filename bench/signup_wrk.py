"""Sign-ups per second under wrk, beside ``GET /healthz`` of the same server.

    .venv/bin/python bench/signup_wrk.py [--duration 10] [--connections 8] [--workers 2]

Starts ``qianbao serve`` (PostgreSQL database ``qianbao_signup_bench``, recreated each
run, N worker processes, the demo SMS outbox, the SMS throttles opened wide: every
sign-up is a new number from one address). wrk, whose client cost is small beside the
server's, then drives it twice:

* ``GET /healthz``: the reference, what the stack costs per request;
* whole sign-ups: each wrk thread owns one connection and walks, number after number,
  ``POST /api/v1/auth/sms-codes`` -> ``GET /api/v1/demo/outbox`` (the code, as the SMS
  would bring it) -> ``POST /api/v1/auth/sessions`` (the account opened, signed in). A
  Lua state machine per thread (wrk gives each thread its own) reads the code from the
  outbox's answer and counts the sign-ups that ended in a session.

Printed: sign-ups a second and their ratio to /healthz requests a second (the issue's
goal: >= 0.3x), wrk's per-request p50/p99, the server's CPU per sign-up (its processes'
/proc times over the phase; PostgreSQL's backends are not in it), and every non-2xx.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import oidc_http  # noqa: E402
import payments_http  # noqa: E402
import signup_http  # noqa: E402
import wrkload  # noqa: E402

DATABASE = "qianbao_signup_bench"

# One connection per thread, so each thread's requests are one sign-up after another.
# Numbers +44 790T NNNNNN (all valid UK mobiles): T the thread (0-9), N its own count;
# each is a new person.
SIGNUP_LUA = r"""
local threads, next_id = {}, 0
function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

local step, count, number, code = 0, 0, nil, nil
signups, refused = 0, 0
local json = { ["Content-Type"] = "application/json" }

local function next_number()
  count = count + 1
  number = string.format("+44790%d%06d", id, count)
end

function request()
  if step == 0 then
    next_number()
    return wrk.format("POST", "/api/v1/auth/sms-codes", json, string.format(
      '{"country":"GB","number":"%s","purpose":"signup","agreement_version":"2026-11-01"}',
      number))
  elseif step == 1 then
    return wrk.format("GET", "/api/v1/demo/outbox?phone=" .. number:gsub("+", "%%2B"))
  end
  return wrk.format("POST", "/api/v1/auth/sessions", json, string.format(
    '{"country":"GB","number":"%s","purpose":"signup","code":"%s"}', number, code))
end

function response(status, headers, body)
  if status >= 300 then
    refused = refused + 1
    step = 0
  elseif step == 0 then
    step = 1
  elseif step == 1 then
    local text = body:match('"body"%s*:%s*"(.-)"')
    code = text and text:match("%f[%d](%d%d%d%d%d%d)%f[%D]")
    step = code and 2 or 0
  else
    signups = signups + 1
    step = 0
  end
end

function done(summary, latency, requests)
  local total, failed = 0, 0
  for _, thread in ipairs(threads) do
    total = total + thread:get("signups")
    failed = failed + thread:get("refused")
  end
  io.write(string.format("SIGNUPS %d REFUSED %d\n", total, failed))
end
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per phase")
    parser.add_argument("--connections", type=int, default=8, help="wrk threads, one each")
    parser.add_argument("--workers", type=int, default=2)
    options = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt install wrk)", file=sys.stderr)
        return 2
    if options.connections > 10:
        parser.error("at most 10 connections (the thread's digit in the numbers)")
    url = payments_http.fresh_database(DATABASE)
    work = Path(tempfile.mkdtemp(prefix="qianbao-signup-wrk-"))
    server = signup_http.Server(
        url, options.workers, work, work / "server.log", secrets.token_urlsafe(32)
    )
    try:
        asyncio.run(oidc_http.wait_ready(server))
        healthz = oidc_http.run_wrk(
            server,
            "GET /healthz",
            [f"{server.base_url}/healthz"],
            options.duration,
            options.connections,
            threads=options.connections,
        )
        signups, refused, load, cpu_total = run_signups(server, options, work)
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    rate = signups / options.duration
    cpu = cpu_total / signups if signups and cpu_total is not None else float("nan")
    print(
        f"signup_wrk: {options.connections} connections, {options.workers} workers, PostgreSQL,"
        f" {os.cpu_count()} cores shared by wrk, the server and the database,"
        f" load average {os.getloadavg()[0]:.2f}"
    )
    print(
        f"GET /healthz: {healthz.per_second:,.0f}/s  {healthz.latency}"
        f"  server CPU {healthz.cpu_ms or float('nan'):.2f} ms a request  non-2xx {healthz.non_2xx}"
    )
    print(
        f"sign-ups (3 requests each): {rate:,.1f}/s"
        f"  per request p50 {load.p50_ms:.1f} ms, p99 {load.p99_ms:.1f} ms"
        f"  refused {refused}  ratio {rate / healthz.per_second:.3f}x of /healthz (goal >= 0.3x)"
    )
    print(f"server CPU per sign-up: {cpu:.1f} ms")
    return 1 if refused or not signups else 0


def run_signups(
    server: signup_http.Server, options: argparse.Namespace, work: Path
) -> tuple[int, int, wrkload.WrkRun, float | None]:
    """The sign-up phase: wrk's own figures, the sign-ups its Lua counted, and the
    server's CPU per request over the phase."""
    before = server.cpu_seconds()
    load = wrkload.run(
        server.base_url,
        SIGNUP_LUA,
        connections=options.connections,
        seconds=options.duration,
        work_dir=work,
    )
    time.sleep(signup_http.STATS_SETTLE_S)
    after = server.cpu_seconds()
    counted = re.search(r"SIGNUPS (\d+) REFUSED (\d+)", load.output)
    if counted is None:
        raise RuntimeError(f"wrk printed no counts:\n{load.output}")
    cpu = (after - before) * 1000 if before is not None and after is not None else None
    return int(counted.group(1)), int(counted.group(2)), load, cpu


if __name__ == "__main__":
    raise SystemExit(main())
