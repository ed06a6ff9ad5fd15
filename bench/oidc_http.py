"""Log in with Qianbao under wrk: the token endpoint and userinfo per second, beside
``GET /healthz`` of the same server.

Starts ``qianbao serve`` (one worker process, a fresh SQLite database, or PostgreSQL with
``--pg``), registers a secret shop and a person in process, and issues refresh tokens
straight through the service (each one a separate family), then runs wrk three times
against the same server:

* ``GET /healthz``: the baseline, what the stack costs per request;
* ``POST /oauth2/token`` with ``grant_type=refresh_token``: client authentication
  (HTTP Basic, a keyed hash), the token looked up, rotated, a new pair stored, and a
  fresh ES256 ID token signed. A refresh token works once, so a Lua script gives every
  request its own token (one wrk thread: the threads' Lua states would share the list);
* ``GET /oauth2/userinfo`` with one bearer access token.

It prints requests/s, wrk's latency percentiles, the ratio to /healthz, every non-2xx
answer, and the server's CPU per request (from /proc, the server's process group).
The client runs on the same cores as the server: the header says how many.

    .venv/bin/python bench/oidc_http.py                 # 8 s per phase, 8 connections
    .venv/bin/python bench/oidc_http.py --duration 3    # quicker
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import signup_http  # noqa: E402

from qianbao.db import Database, Tx  # noqa: E402
from qianbao.identity import service as identity  # noqa: E402
from qianbao.openplatform.oidc import service as oidc  # noqa: E402
from qianbao.settings import Settings  # noqa: E402

REFRESH_LUA = """
local tokens = {}
for line in io.lines(os.getenv("OIDC_TOKENS")) do tokens[#tokens + 1] = line end
local next_token = 0
local auth = os.getenv("OIDC_BASIC")
request = function()
  next_token = next_token + 1
  local body = "grant_type=refresh_token&refresh_token=" .. tokens[next_token]
  return wrk.format("POST", "/oauth2/token", {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["Authorization"] = "Basic " .. auth,
  }, body)
end
"""


@dataclass
class Phase:
    name: str
    requests: int
    per_second: float
    latency: str
    non_2xx: int
    errors: str
    cpu_ms: float | None


def prepare(settings: Settings, tokens: int) -> tuple[str, str, list[str], str]:
    """A shop (client id, secret), ``tokens`` refresh tokens, one access token."""
    database = Database(settings)

    def setup(tx: Tx) -> tuple[str, str, object]:
        person = identity.seed_demo_accounts(tx)[0]
        shop, secret = oidc.register_shop(
            tx,
            client_id=f"bench-{secrets.token_hex(4)}",
            name_en="Bench shop",
            name_zh="压测商户",
            redirect_uris=["https://bench.example/cb"],
        )
        assert secret is not None
        return shop.client_id, secret, person.id

    client_id, secret, person_id = database.run(setup)
    refresh = [secrets.token_urlsafe(48) for _ in range(tokens)]
    access = secrets.token_urlsafe(32)

    def issue(tx: Tx) -> None:
        for index, token in enumerate(refresh):
            oidc.save_token(
                tx,
                oidc.IssuedToken(
                    client_id=client_id,
                    user_id=person_id,  # type: ignore[arg-type]
                    access_token=access if index == 0 else secrets.token_urlsafe(32),
                    refresh_token=token,
                    scope="openid",
                    claims="{}",
                    code_hash=None,
                    family_id=None,
                ),
            )

    database.run(issue)
    database.dispose()
    return client_id, secret, refresh, access


def run_wrk(
    server: signup_http.Server,
    name: str,
    args: list[str],
    duration: int,
    connections: int,
    env: dict[str, str] | None = None,
    threads: int = 1,
) -> Phase:
    before = server.cpu_seconds()
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency", *args]
    done = subprocess.run(
        command, capture_output=True, text=True, check=True, env={**os.environ, **(env or {})}
    )
    time.sleep(signup_http.STATS_SETTLE_S)
    after = server.cpu_seconds()
    out = done.stdout
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    percentiles = re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.MULTILINE)
    cpu = (
        (after - before) * 1000 / requests
        if requests and before is not None and after is not None
        else None
    )
    return Phase(
        name,
        requests,
        rate,
        ", ".join(f"p{p} {v}" for p, v in percentiles),
        int(non_2xx.group(1)) if non_2xx else 0,
        errors.group(1) if errors else "none",
        cpu,
    )


async def wait_ready(server: signup_http.Server) -> None:
    async with httpx.AsyncClient() as client:
        await server.wait_ready(client)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=8, help="seconds per phase")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=20000, help="refresh tokens to issue")
    options = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt install wrk)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="qianbao-oidc-bench-"))
    url = f"sqlite:///{work / 'qianbao.db'}"
    secret_key = secrets.token_urlsafe(32)
    server = signup_http.Server(url, 1, work, work / "server.log", secret_key)
    try:
        asyncio.run(wait_ready(server))
        settings = Settings(database_url=url, var_dir=work / "var", secret_key=secret_key)
        client_id, secret, refresh, access = prepare(settings, options.tokens)
        tokens_file = work / "tokens.txt"
        tokens_file.write_text("\n".join(refresh) + "\n")
        lua = work / "refresh.lua"
        lua.write_text(REFRESH_LUA)
        basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
        base = server.base_url
        print(
            f"# Log in with Qianbao under wrk ({os.cpu_count()} cores shared by client and "
            f"server; 1 worker process; SQLite; {options.connections} connections, "
            f"{options.duration} s per phase)"
        )
        phases = [
            run_wrk(
                server, "GET /healthz", [f"{base}/healthz"], options.duration, options.connections
            ),
            run_wrk(
                server,
                "POST /oauth2/token (refresh)",
                ["-s", str(lua), base],
                options.duration,
                options.connections,
                {"OIDC_TOKENS": str(tokens_file), "OIDC_BASIC": basic},
            ),
            run_wrk(
                server,
                "GET /oauth2/userinfo",
                ["-H", f"Authorization: Bearer {access}", f"{base}/oauth2/userinfo"],
                options.duration,
                options.connections,
            ),
        ]
    finally:
        server.stop()
    baseline = phases[0].per_second
    print(
        "| Phase | req/s | ratio to /healthz | latency | server CPU per request "
        "| non-2xx | socket errors |"
    )
    print("|---|---|---|---|---|---|---|")
    for phase in phases:
        cpu = f"{phase.cpu_ms:.2f} ms" if phase.cpu_ms is not None else "?"
        print(
            f"| {phase.name} | {phase.per_second:.0f} | {phase.per_second / baseline:.2f} | "
            f"{phase.latency} | {cpu} | {phase.non_2xx} | {phase.errors} |"
        )
    if phases[1].requests >= options.tokens:
        print(
            "warning: the token phase ran out of refresh tokens: raise --tokens above "
            f"{phases[1].requests}"
        )
    shutil.rmtree(work, ignore_errors=True)
    return 0 if all(phase.non_2xx == 0 for phase in phases) else 1


if __name__ == "__main__":
    raise SystemExit(main())
