"""Drive an HTTP server with wrk (a C load generator from Debian's ``wrk`` package) and read its figures.

wrk keeps up to ``connections`` keep-alive connections busy from ``threads`` OS threads and costs far
less CPU per request than a Python client, so on a small machine it leaves the server's cores to the
server. What it sends is a Lua script written here: a fixed rotation of requests, or requests whose
body has a counter substituted into it (a policy seed no stored decision has). Its ``done`` hook prints
one machine-readable line, so nothing depends on wrk's human output:

    EVALGATE requests=N duration_us=D status_errors=S socket_errors=E bytes=B p50_us=P p99_us=Q

Latencies are wrk's: from sending a request to reading its answer on one connection (closed loop, no
correction for coordinated omission, as for the asyncio client of ``bench/api_speed.py``).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil

COUNTER = "__COUNTER__"
"""Where a request body takes the running counter (a JSON string placeholder, replaced by a number)."""
_SUMMARY = re.compile(r"^EVALGATE (.*)$", re.MULTILINE)

DONE_HOOK = """
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "EVALGATE requests=%d duration_us=%d status_errors=%d socket_errors=%d bytes=%d p50_us=%d p99_us=%d\\n",
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    summary.bytes, latency:percentile(50), latency:percentile(99)))
end
"""


@dataclass(frozen=True)
class Spec:
    """One request of the rotation: method, path, JSON body (None for none)."""

    method: str
    path: str
    body: str | None = None


@dataclass(frozen=True)
class WrkFigures:
    """What one wrk run measured."""

    requests: int
    seconds: float
    status_errors: int
    """Answers with a status of 400 or more."""
    socket_errors: int
    """Connect, read and write errors and timeouts."""
    bytes_read: int
    p50_ms: float
    p99_ms: float

    @property
    def rate(self) -> float:
        """Answered requests per second (wrk's own count over its own clock)."""
        return self.requests / self.seconds if self.seconds else 0.0


def available() -> bool:
    """Whether ``wrk`` is on the PATH."""
    return shutil.which("wrk") is not None


def lua_script(specs: Sequence[Spec], token: str, counter_start: int = 0) -> str:
    """A wrk script sending ``specs`` in rotation with a bearer ``token``; ``COUNTER`` in a body (as the
    JSON string ``"__COUNTER__"``) becomes ``counter_start``, then one more per request."""
    rows = ",\n".join(
        f"  {{{_lua_string(spec.method)}, {_lua_string(spec.path)}, "
        f"{'nil' if spec.body is None else _lua_string(spec.body)}}}"
        for spec in specs
    )
    return f"""
local specs = {{
{rows}
}}
local token = {_lua_string(token)}
local placeholder = {_lua_string(json.dumps(COUNTER))}
local counter = {counter_start}
local index = 0

function request()
  index = index % #specs + 1
  local spec = specs[index]
  local headers = {{["Authorization"] = "Bearer " .. token}}
  local body = spec[3]
  if body ~= nil then
    headers["Content-Type"] = "application/json"
    local at = string.find(body, placeholder, 1, true)
    if at then
      body = string.sub(body, 1, at - 1) .. counter .. string.sub(body, at + #placeholder)
      counter = counter + 1
    end
  end
  return wrk.format(spec[1], spec[2], headers, body)
end
{DONE_HOOK}"""


def _lua_string(value: str) -> str:
    """``value`` as a Lua string literal (JSON's escapes are valid Lua escapes for this text)."""
    return json.dumps(value)


def parse(output: str) -> WrkFigures:
    """The figures of wrk's output (the ``EVALGATE`` line of the ``done`` hook); ValueError without it."""
    match = _SUMMARY.search(output)
    if match is None:
        raise ValueError(f"wrk printed no summary line:\n{output[-2000:]}")
    values = {key: int(value) for key, value in (pair.split("=") for pair in match.group(1).split())}
    return WrkFigures(
        requests=values["requests"],
        seconds=values["duration_us"] / 1e6,
        status_errors=values["status_errors"],
        socket_errors=values["socket_errors"],
        bytes_read=values["bytes"],
        p50_ms=values["p50_us"] / 1000,
        p99_ms=values["p99_us"] / 1000,
    )


@contextmanager
def running(
    url: str, script: str, *, connections: int, seconds: float, threads: int = 1
) -> Iterator[psutil.Popen]:
    """wrk against ``url`` for ``seconds`` with ``script``, started on entry; its process is yielded
    (for CPU accounting) and waited for on exit."""
    with tempfile.TemporaryDirectory(prefix="evalgate-wrk-") as folder:
        path = Path(folder) / "load.lua"
        path.write_text(script)
        command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s", "-s", str(path),
                   "--timeout", "30s", url]  # fmt: skip
        process = psutil.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            yield process
        finally:
            process.wait()


def run(url: str, script: str, *, connections: int, seconds: float, threads: int = 1) -> WrkFigures:
    """One wrk run to the end; its figures."""
    with running(url, script, connections=connections, seconds=seconds, threads=threads) as process:
        return finish(process)


def finish(process: psutil.Popen) -> WrkFigures:
    """Wait for a ``running`` wrk to end; its figures, or RuntimeError with its output if it failed."""
    output, _ = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"wrk exited {process.returncode}:\n{output[-2000:]}")
    return parse(output)
