"""wrk as the load generator of the HTTP benchmarks: its own cost is small beside the
server's, so it does not cap the figure the way a Python client sharing the cores does.

Each benchmark gives a Lua script; this runs wrk with one connection per thread (so a
thread's Lua state walks its own client's requests in order), ``--latency``, and reads
back the completed requests, the non-2xx answers, the socket errors and p50/p99.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


@dataclass(frozen=True)
class WrkRun:
    requests: int  # answers received within the run (wrk's count)
    non_2xx: int
    socket_errors: str
    p50_ms: float
    p99_ms: float
    output: str

    @property
    def succeeded(self) -> int:
        return self.requests - self.non_2xx


def available() -> bool:
    return shutil.which("wrk") is not None


def run(
    base_url: str,
    script: str,
    *,
    connections: int,
    seconds: float,
    work_dir: Path,
    env: dict[str, str] | None = None,
) -> WrkRun:
    """wrk with ``script`` against ``base_url``: ``connections`` threads of one connection."""
    lua = work_dir / "load.lua"
    lua.write_text(script)
    command = [
        "wrk",
        f"-t{connections}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
        "--timeout",
        "30s",
        "-s",
        str(lua),
        base_url,
    ]
    out = subprocess.run(
        command, capture_output=True, text=True, check=True, env={**os.environ, **(env or {})}
    ).stdout
    return parse(out)


def parse(out: str) -> WrkRun:
    requests = re.search(r"(\d+) requests in", out)
    if requests is None:
        raise RuntimeError(f"wrk printed no request count:\n{out}")
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    percentiles = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.MULTILINE))
    return WrkRun(
        int(requests.group(1)),
        int(non_2xx.group(1)) if non_2xx else 0,
        errors.group(1) if errors else "none",
        duration_ms(percentiles.get("50", "0ms")),
        duration_ms(percentiles.get("99", "0ms")),
        out,
    )


def duration_ms(text: str) -> float:
    """wrk's "850.00us", "12.34ms", "1.20s" or "1.01m" in milliseconds."""
    found = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if found is None:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(found.group(1)) * _UNITS_MS[found.group(2)]


# Numbers each thread (``id``, 0 to N-1, set before its init) and reads its client's own
# lines from $BENCH_DIR/client-<id>.txt: a bearer token first, then what that client uses.
CLIENT_FILES_LUA = r"""
local next_id = 0
function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
end

token, lines = nil, {}
function init(args)
  for line in io.lines(os.getenv("BENCH_DIR") .. "/client-" .. id .. ".txt") do
    if token == nil then token = line else lines[#lines + 1] = line end
  end
end
"""


def write_client_files(work_dir: Path, clients: list[list[str]]) -> dict[str, str]:
    """One file per client for ``CLIENT_FILES_LUA``; the environment wrk needs."""
    for index, lines in enumerate(clients):
        (work_dir / f"client-{index}.txt").write_text("\n".join(lines) + "\n")
    return {"BENCH_DIR": str(work_dir)}
