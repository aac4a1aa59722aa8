"""Requests/s and latency of the REST API's gate endpoints: uvicorn and PostgreSQL, load on loopback.

    python -m bench.api_speed         # from the repository root (tests.support.scored_runs seeds)
    python -m bench.api_speed --workers 2 --connections 32 --duration 10 --warmup 2

Needs the PostgreSQL server at 127.0.0.1:5432 with a user allowed to create databases (``--admin-url``).

Target (issue): POST /gate/decide from stored scores and GET /gate/decisions/{id} at >= 500 requests/s
with p99 <= 50 ms on the 2-core machine against PostgreSQL.

The script creates (or resets) a PostgreSQL database, migrates it and seeds one dataset version (300
rows per cohort), a base run and three candidate runs scored on quality/target and quality/ood (the
two checks of the policy), stores each candidate's decision once and creates a write token. For each
``--workers`` value it starts ``uvicorn api.main:app`` in a subprocess on a free loopback port (access
log off) and drives it with ``--connections`` keep-alive connections, measuring ``--duration`` seconds
after ``--warmup`` seconds, for three scenarios:

    decide-stored  POST /gate/decide whose decision is already stored (the idempotent path, reused=true)
    get            GET /gate/decisions/{id}
    decide-fresh   POST /gate/decide with a new policy seed per request (paired bootstrap, then insert)

Each connection sends its next request as soon as the previous answer arrived (closed loop), so the
figures are the throughput at that concurrency and the latency it costs (fewer connections: lower
latency, at most the same throughput). The load generator is ``wrk`` (``bench/wrk_load.py``; Debian's
``wrk`` package) when it is installed: one C thread, a small fraction of a core. ``--generator asyncio``
uses a minimal HTTP/1.1 client on asyncio streams in this process instead (about 0.25 ms of CPU per
request; ``httpx.AsyncClient`` took about 5 ms, as much as the server). Either shares the machine's
cores with the server and PostgreSQL (and whatever else runs there), so the CPU each used during the
window is printed beside the figures (``cpu% client`` is the generator's), with the server's CPU per
request, which other load disturbs much less than requests/s.

Last, the same three operations are called in-process (``decide_candidate``, ``get_decision``) in a
loop, so the HTTP overhead can be read off. The server is stopped and the database dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import itertools
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
import uvicorn
from sqlalchemy import create_engine, event, select, text
from sqlalchemy.engine import make_url

from bench import wrk_load
from evalgate.core.settings import Settings
from evalgate.data.store import DatasetStore
from evalgate.db.migrate import upgrade
from evalgate.db.models import DatasetVersion
from evalgate.db.session import engine_for, session_factory, session_scope
from evalgate.gate.policy import GatePolicy
from evalgate.gate.service import decide_candidate, get_decision
from evalgate.service.api_tokens import create_token
from tests.support.scored_runs import add_candidate, add_run

REPO_ROOT = Path(__file__).resolve().parents[1]
ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
HOST = "127.0.0.1"
ROWS = 300
POLICY: dict[str, Any] = {
    "objective": "quality/target",
    "checks": [
        {"evaluator": "quality", "cohort": "target", "margin": 0.05},
        {"evaluator": "quality", "cohort": "ood", "margin": 0.05},
    ],
}
CANDIDATES = {"learns": (0.4, 0.0), "forgets": (0.5, -0.3), "flat": (0.0, 0.0)}
"""Candidate name -> (gain on target, drift on ood) added to the base run's scores."""
SCENARIOS = ("decide-stored", "get", "decide-fresh")
TARGETED = ("decide-stored", "get")
TARGET_RPS = 500.0
TARGET_P99_MS = 50.0
REQUEST_TIMEOUT_S = 30.0
STARTUP_TIMEOUT_S = 90.0
NOISY_CPU_PERCENT = 15.0


@dataclass(frozen=True)
class Seeded:
    """What the scenarios need from the seeded database."""

    url: str
    candidate_ids: tuple[int, ...]
    decision_ids: tuple[int, ...]
    token: str


@dataclass(frozen=True)
class Result:
    """One scenario's figures at one worker count."""

    scenario: str
    workers: int
    connections: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    response_bytes: int
    cpu: dict[str, float]
    """% of one core used during the window by: client, server, postgres, other, steal."""
    first_error: str = ""

    @property
    def server_cpu_ms(self) -> float:
        """CPU milliseconds the uvicorn processes spent per answered request (robust to other load)."""
        return 10 * self.cpu["server"] / self.rps if self.rps else float("nan")

    @property
    def meets_target(self) -> bool:
        """>= TARGET_RPS with p99 <= TARGET_P99_MS and no errors."""
        return self.rps >= TARGET_RPS and self.p99_ms <= TARGET_P99_MS and self.errors == 0


@dataclass(frozen=True)
class InProcess:
    """One operation called in a loop in this process."""

    rate: float
    """Calls per second (wall clock, one thread)."""
    cpu_ms: float
    """This process's CPU milliseconds per call (PostgreSQL's share not included)."""
    queries: float
    """SQL statements per call."""


@dataclass
class Samples:
    """Latencies (seconds) of requests completed inside the window, and the failures."""

    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str = ""

    def fail(self, reason: str) -> None:
        """Count one failed request; keep the first reason for the report."""
        self.errors += 1
        self.first_error = self.first_error or reason


# --------------------------------------------------------------------------------------------- database


def reset_database(admin_url: str, name: str) -> str:
    """Drop ``name`` if it exists, create it empty, migrate it; return its URL."""
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    upgrade(url)
    return url


def drop_database(admin_url: str, name: str, url: str) -> None:
    """Close this process's connections to ``url`` and drop the database."""
    engine_for(url).dispose()
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def postgres_version(url: str) -> str:
    """``PostgreSQL 15.x`` of the server at ``url``."""
    with engine_for(url).connect() as connection:
        full = str(connection.execute(text("SELECT version()")).scalar_one())
    return " ".join(full.split()[:2])


def seed(url: str, home: Path) -> Seeded:
    """One dataset version, a base run, scored candidate runs, one stored decision each, a write token."""
    store = DatasetStore.from_settings(Settings(home=home, database_url=url))
    rows = home / "suite.jsonl"
    with rows.open("w") as handle:
        for cohort, i in itertools.product(("target", "ood"), range(ROWS)):
            handle.write(json.dumps({"id": f"{cohort}-{i}", "question": f"q{i}", "cohort": cohort}) + "\n")
    store.add("bench-suite", [str(rows)])
    rng = np.random.default_rng(1)  # the score model of tests/api/conftest.py
    target, ood = rng.uniform(0.0, 0.4, ROWS), rng.uniform(0.5, 1.0, ROWS)
    with session_scope(store.sessions) as session:
        version = session.scalars(select(DatasetVersion)).one()
        base_scores = {("quality", "target"): target.tolist(), ("quality", "ood"): ood.tolist()}
        base_id = add_run(session, version, None, base_scores, None)
        candidate_ids = []
        for name, (gain, drift) in CANDIDATES.items():
            candidate_ids.append(add_candidate(session, name))
            scores = {
                ("quality", "target"): (target + gain).tolist(),
                ("quality", "ood"): (ood + drift).tolist(),
            }
            add_run(session, version, candidate_ids[-1], scores, base_id)
    policy = GatePolicy.from_dict(POLICY)
    decision_ids = tuple(decide_candidate(store.sessions, cid, policy).id for cid in candidate_ids)
    token = create_token(store.sessions, "bench-write", "write")
    return Seeded(url, tuple(candidate_ids), decision_ids, token)


# ----------------------------------------------------------------------------------------------- server


@dataclass(frozen=True)
class Server:
    """A running uvicorn process (and its worker processes) serving ``database``."""

    port: int
    process: psutil.Popen
    workers: int
    database: str


def free_port() -> int:
    """A loopback port nobody listens on (the OS picks it)."""
    with closing(socket.socket()) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def serve(url: str, home: Path, workers: int) -> Iterator[Server]:
    """``uvicorn api.main:app`` with ``workers`` workers on a free port, until the block ends.

    The per-token rate limit is off (``EVALGATE_RATE_LIMIT_PER_SECOND=0``, unless the environment sets
    it): one token drives all connections here, and what is measured is the server, not the limit."""
    port, log = free_port(), home / f"uvicorn-{workers}.log"
    env = {"EVALGATE_RATE_LIMIT_PER_SECOND": "0", **os.environ, "EVALGATE_DATABASE_URL": url,
           "EVALGATE_HOME": str(home)}  # fmt: skip
    command = [sys.executable, "-m", "uvicorn", "api.main:app", "--host", HOST, "--port", str(port),
               "--workers", str(workers), "--no-access-log", "--log-level", "info"]  # fmt: skip
    with log.open("w") as log_file:
        process = psutil.Popen(command, cwd=REPO_ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    try:
        wait_ready(process, log, workers)
        wait_healthy(port)
        yield Server(port, process, workers, make_url(url).database or "")
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except psutil.TimeoutExpired:
            process.kill()
            process.wait()


def wait_ready(process: psutil.Popen, log: Path, workers: int) -> None:
    """Wait until every worker has logged that its application started."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while log.read_text().count("Application startup complete") < workers:
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"uvicorn did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)


def wait_healthy(port: int) -> None:
    """Wait until /healthz reports the database up and at the latest migration."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        try:
            answer = httpx.get(f"http://{HOST}:{port}/healthz", timeout=5)
            if answer.status_code == 200 and answer.json()["status"] == "ok":
                return
            problem = answer.text
        except httpx.HTTPError as error:
            problem = str(error)
        if time.monotonic() > deadline:
            raise RuntimeError(f"/healthz never answered ok: {problem}")
        time.sleep(0.2)


# ------------------------------------------------------------------------------------------- scenarios


def http_request(method: str, path: str, token: str, body: dict[str, Any] | None = None) -> bytes:
    """The bytes of one keep-alive HTTP/1.1 request."""
    payload = b"" if body is None else json.dumps(body).encode()
    head = [f"{method} {path} HTTP/1.1", f"Host: {HOST}", f"Authorization: Bearer {token}"]
    if body is not None:
        head += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + payload


def fresh_policy(seed: int | str) -> dict[str, Any]:
    """POLICY with another bootstrap seed: a policy hash no stored decision has."""
    return {**POLICY, "seed": seed}


def request_source(scenario: str, seeded: Seeded, seeds: Iterator[int]) -> Callable[[], bytes]:
    """A function returning the next request of ``scenario`` (round-robin over candidates/decisions)."""
    token = seeded.token
    if scenario == "decide-stored":
        stored = [http_request("POST", "/gate/decide", token, {"candidate_id": cid, "policy": POLICY})
                  for cid in seeded.candidate_ids]  # fmt: skip
        return itertools.cycle(stored).__next__
    if scenario == "get":
        gets = [http_request("GET", f"/gate/decisions/{did}", token) for did in seeded.decision_ids]
        return itertools.cycle(gets).__next__
    candidates = itertools.cycle(seeded.candidate_ids)

    def fresh() -> bytes:
        body = {"candidate_id": next(candidates), "policy": fresh_policy(next(seeds))}
        return http_request("POST", "/gate/decide", token, body)

    return fresh


def check_scenario(port: int, make_request: Callable[[], bytes], scenario: str) -> int:
    """Send one request of ``scenario``, check it does what it claims; return the response size."""

    async def once() -> tuple[int, bytes]:
        reader, writer = await asyncio.open_connection(HOST, port)
        writer.write(make_request())
        answer = await read_response(reader)
        writer.close()
        return answer

    status, body = asyncio.run(once())
    if status != 200:
        raise RuntimeError(f"{scenario}: HTTP {status}: {body[:500]!r}")
    decision = json.loads(body)
    expected_reuse = {"decide-stored": True, "decide-fresh": False}.get(scenario)
    if expected_reuse is not None and decision["reused"] is not expected_reuse:
        raise RuntimeError(f"{scenario}: reused is {decision['reused']}, expected {expected_reuse}")
    return len(body)


# ---------------------------------------------------------------------------------------- load generator


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """Status and body of one HTTP/1.1 response with a Content-Length."""
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    status = int(head[0].split(" ", 2)[1])
    for line in head[1:]:
        name, _, value = line.partition(":")
        if name.lower() == "content-length":
            return status, await reader.readexactly(int(value))
    raise ValueError(f"response without Content-Length: {head[0]}")


async def connection_loop(
    port: int, make_request: Callable[[], bytes], start: float, stop: float, samples: Samples
) -> None:
    """One keep-alive connection sending requests back to back until ``stop``; reconnects on errors."""
    writer: asyncio.StreamWriter | None = None
    while time.perf_counter() < stop:
        sent = time.perf_counter()
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT_S):
                if writer is None:
                    reader, writer = await asyncio.open_connection(HOST, port)
                writer.write(make_request())
                status, body = await read_response(reader)
            problem = "" if status == 200 else f"HTTP {status}: {body[:300]!r}"
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as error:
            problem = f"{type(error).__name__}: {error}"
            if writer is not None:
                writer.close()  # the next request opens a new connection
            writer = None
        done = time.perf_counter()
        if start <= done <= stop:
            if problem:
                samples.fail(problem)
            else:
                samples.latencies.append(done - sent)
    if writer is not None:
        writer.close()


@dataclass(frozen=True)
class CpuSnapshot:
    """CPU seconds used so far, per process of each group, by the machine, and stolen from it."""

    processes: dict[str, dict[int, float]]
    """Group (client, server, postgres) -> process id -> CPU seconds (user + system)."""
    machine: float
    steal: float
    """Time this virtual machine wanted a core and the hypervisor gave it to someone else."""


def cpu_snapshot(server: psutil.Process, database: str, client: psutil.Process | None = None) -> CpuSnapshot:
    """CPU used so far by the client (``client``, default this process), the server with its workers,
    PostgreSQL (the backends serving ``database`` and the background processes) and the whole machine."""

    def ours(title: str) -> bool:
        return f" {database} " in title or "(" not in title  # a backend of ours, or a background process

    postgres = [
        process
        for process in psutil.process_iter(["name", "cmdline"])
        if process.info["name"] == "postgres" and ours(" ".join(process.info["cmdline"] or []))
    ]
    groups = {
        "client": [client or psutil.Process()],
        "server": [server, *server.children(recursive=True)],
        "postgres": postgres,
    }
    machine = psutil.cpu_times()
    return CpuSnapshot(
        processes={name: process_seconds(processes) for name, processes in groups.items()},
        machine=sum(getattr(machine, name, 0.0) for name in ("user", "nice", "system", "irq", "softirq")),
        steal=getattr(machine, "steal", 0.0),
    )


def process_seconds(processes: list[psutil.Process]) -> dict[int, float]:
    """Process id -> CPU seconds (user + system) of those still running."""
    seconds = {}
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        seconds[process.pid] = float(times.user + times.system)
    return seconds


def cpu_shares(before: CpuSnapshot, after: CpuSnapshot, seconds: float) -> dict[str, float]:
    """% of one core used between two snapshots by client, server, postgres, other processes (the
    machine's busy time less those three) and steal. A process that ended in between is left out."""
    share = {}
    for group, now in after.processes.items():
        then = before.processes[group]
        share[group] = 100 * sum(used - then.get(pid, 0.0) for pid, used in now.items()) / seconds
    busy = 100 * (after.machine - before.machine) / seconds
    share["other"] = max(0.0, busy - sum(share.values()))
    share["steal"] = 100 * (after.steal - before.steal) / seconds
    return share


async def drive(
    server: Server, make_request: Callable[[], bytes], connections: int, warmup: float, duration: float
) -> tuple[Samples, dict[str, float]]:
    """Run ``connections`` connection loops; return the window's samples and CPU in % of one core."""
    start = time.perf_counter() + warmup
    stop = start + duration
    samples = Samples()
    loops = [connection_loop(server.port, make_request, start, stop, samples) for _ in range(connections)]

    async def measure_cpu() -> dict[str, float]:
        await asyncio.sleep(start - time.perf_counter())
        before = cpu_snapshot(server.process, server.database)
        await asyncio.sleep(stop - time.perf_counter())
        return cpu_shares(before, cpu_snapshot(server.process, server.database), duration)

    cpu, _ = await asyncio.gather(measure_cpu(), asyncio.gather(*loops))
    return samples, cpu


def run_scenario(
    scenario: str, seeded: Seeded, server: Server, args: argparse.Namespace, seeds: Iterator[int]
) -> Result:
    """Check, warm up, measure and summarise one scenario against a running server."""
    make_request = request_source(scenario, seeded, seeds)
    size = check_scenario(server.port, make_request, scenario)
    if args.generator == "wrk":
        figures, cpu = drive_wrk(server, wrk_specs(scenario, seeded), seeded.token, args)
        errors = figures.status_errors + figures.socket_errors
        problem = f"{figures.status_errors} answers >= 400, {figures.socket_errors} socket errors"
        return Result(scenario, server.workers, args.connections, figures.rate, figures.p50_ms,
                      figures.p99_ms, errors, size, cpu, problem if errors else "")  # fmt: skip
    samples, cpu = asyncio.run(drive(server, make_request, args.connections, args.warmup, args.duration))
    latencies_ms = 1000 * np.array(samples.latencies or [float("nan")])
    return Result(
        scenario=scenario,
        workers=server.workers,
        connections=args.connections,
        rps=len(samples.latencies) / args.duration,
        p50_ms=float(np.percentile(latencies_ms, 50)),
        p99_ms=float(np.percentile(latencies_ms, 99)),
        errors=samples.errors,
        response_bytes=size,
        cpu=cpu,
        first_error=samples.first_error,
    )


def wrk_specs(scenario: str, seeded: Seeded) -> list[wrk_load.Spec]:
    """The rotation of requests wrk sends for ``scenario`` (fresh decisions: a new seed each)."""
    if scenario == "get":
        return [wrk_load.Spec("GET", f"/gate/decisions/{did}") for did in seeded.decision_ids]
    policy = fresh_policy(wrk_load.COUNTER) if scenario == "decide-fresh" else POLICY
    return [
        wrk_load.Spec("POST", "/gate/decide", json.dumps({"candidate_id": cid, "policy": policy}))
        for cid in seeded.candidate_ids
    ]


WRK_SEED_BLOCK = 10_000_000
"""wrk's fresh-decision seeds start at a multiple of this (far above the in-process ones)."""
_wrk_runs = itertools.count(1)


def drive_wrk(
    server: Server, specs: list[wrk_load.Spec], token: str, args: argparse.Namespace
) -> tuple[wrk_load.WrkFigures, dict[str, float]]:
    """A wrk warm-up run, then the measured run; the CPU window spans the measured run less half a
    second at each end (wrk's own process is the client)."""
    url = f"http://{HOST}:{server.port}"

    def script() -> str:
        return wrk_load.lua_script(specs, token, counter_start=next(_wrk_runs) * WRK_SEED_BLOCK)

    if args.warmup > 0:
        wrk_load.run(url, script(), connections=args.connections, seconds=args.warmup)
    with wrk_load.running(url, script(), connections=args.connections, seconds=args.duration) as wrk:
        time.sleep(0.5)
        before, started = cpu_snapshot(server.process, server.database, wrk), time.perf_counter()
        time.sleep(max(0.5, args.duration - 1.0))
        after = cpu_snapshot(server.process, server.database, wrk)
        cpu = cpu_shares(before, after, time.perf_counter() - started)
        figures = wrk_load.finish(wrk)
    return figures, cpu


# ------------------------------------------------------------------------------------------- in-process


@contextmanager
def count_queries(url: str) -> Iterator[list[int]]:
    """Count the SQL statements sent through the engine of ``url`` (BEGIN, COMMIT and pings excluded)."""
    counter = [0]

    def count(*_: Any) -> None:
        counter[0] += 1

    engine = engine_for(url)
    event.listen(engine, "before_cursor_execute", count)
    try:
        yield counter
    finally:
        event.remove(engine, "before_cursor_execute", count)


def in_process(seeded: Seeded, seconds: float, seeds: Iterator[int]) -> dict[str, InProcess]:
    """Each scenario's operation called in a loop in this process (one thread, no HTTP)."""
    sessions = session_factory(seeded.url)
    policy = GatePolicy.from_dict(POLICY)
    candidates, decisions = itertools.cycle(seeded.candidate_ids), itertools.cycle(seeded.decision_ids)
    operations: dict[str, Callable[[], object]] = {
        "decide-stored": lambda: decide_candidate(sessions, next(candidates), policy),
        "get": lambda: get_decision(sessions, next(decisions)),
        "decide-fresh": lambda: decide_candidate(
            sessions, next(candidates), GatePolicy.from_dict(fresh_policy(next(seeds)))
        ),
    }
    figures = {}
    for scenario, operation in operations.items():
        operation()  # warm: pool connection, statement caches
        calls, started, cpu_started = 0, time.perf_counter(), time.process_time()
        with count_queries(seeded.url) as queries:
            while time.perf_counter() - started < seconds:
                operation()
                calls += 1
        cpu_ms = 1000 * (time.process_time() - cpu_started) / calls
        figures[scenario] = InProcess(calls / (time.perf_counter() - started), cpu_ms, queries[0] / calls)
    return figures


# ---------------------------------------------------------------------------------------------- report


def print_header(args: argparse.Namespace, url: str) -> None:
    """The machine, the software and the load, for the record."""
    print(
        f"machine: {platform.machine()}, {psutil.cpu_count()} cores, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB; python {platform.python_version()}, "
        f"uvicorn {uvicorn.__version__} ({uvicorn_stack()}), {postgres_version(url)} on {HOST}"
    )
    generator = "wrk, one thread" if args.generator == "wrk" else "one asyncio process"
    print(
        f"load: {args.connections} keep-alive connections from {generator} on the same machine "
        f"(closed loop), {args.warmup:g} s warm-up + {args.duration:g} s measured per scenario"
    )
    print(
        "cpu%: share of one core during the window used by the load generator, the uvicorn processes, "
        "PostgreSQL,\nother processes on the machine, and taken by the hypervisor (steal); "
        f"the machine has {100 * (psutil.cpu_count() or 1)}"
    )


def uvicorn_stack() -> str:
    """The event loop and HTTP parser uvicorn's defaults (``--loop auto --http auto``) pick here."""
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    parser = "httptools" if importlib.util.find_spec("httptools") else "h11"
    return f"{loop} loop, {parser} parser"


RESULT_COLUMNS = (
    ("scenario", 14),
    ("workers", 7),
    ("conns", 5),
    ("req/s", 6),
    ("p50 ms", 7),
    ("p99 ms", 7),
    ("errors", 6),
    ("resp B", 6),
    ("srv ms/req", 10),
    ("cpu% client", 11),
    ("server", 6),
    ("pg", 4),
    ("other", 5),
    ("steal", 5),
)
CPU_KEYS = ("client", "server", "postgres", "other", "steal")
IN_PROCESS_COLUMNS = (
    ("in-process", 14),
    ("calls/s", 7),
    ("cpu ms/call", 11),
    ("SQL/call", 8),
    ("HTTP req/s", 10),
    ("srv ms/req", 10),
    ("req/s ratio", 11),
    ("cpu ratio", 9),
)


def table_line(cells: Sequence[object], columns: Sequence[tuple[str, int]]) -> str:
    """``cells`` in the columns' widths: the first left-aligned, the others right-aligned."""
    widths = [width for _, width in columns]
    first, *rest = (str(cell) for cell in cells)
    return f"{first:<{widths[0]}}" + "".join(
        f" {cell:>{w}}" for cell, w in zip(rest, widths[1:], strict=True)
    )


def print_table_header() -> None:
    """Column names of the scenario lines."""
    print("\n" + table_line([name for name, _ in RESULT_COLUMNS], RESULT_COLUMNS))


def print_result(r: Result) -> None:
    """One scenario at one worker count (and its first error, if any)."""
    figures = [f"{r.rps:.0f}", f"{r.p50_ms:.1f}", f"{r.p99_ms:.1f}", r.errors, r.response_bytes]
    cpu = [f"{r.server_cpu_ms:.2f}", *(f"{r.cpu[key]:.0f}" for key in CPU_KEYS)]
    cells = [r.scenario, r.workers, r.connections, *figures, *cpu]
    print(table_line(cells, RESULT_COLUMNS), flush=True)
    if r.first_error:
        print(f"    first error: {r.first_error}")


def print_targets(results: list[Result]) -> None:
    """Whether decide-stored and get meet the issue's target at each worker count; a warning when
    other processes took a noticeable share of the machine meanwhile."""
    busiest = max((r.cpu["other"] + r.cpu["steal"] for r in results), default=0.0)
    if busiest > NOISY_CPU_PERCENT:
        print(
            f"\nwarning: other processes and the hypervisor took up to {busiest:.0f}% of a core during a "
            "window: the machine was not quiet, these figures are lower than it can do"
        )
    print(
        f"\ntarget: >= {TARGET_RPS:.0f} req/s with p99 <= {TARGET_P99_MS:.0f} ms (client on the same cores)"
    )
    for r in results:
        if r.scenario in TARGETED:
            verdict = "met" if r.meets_target else "NOT met"
            figures = f"{r.rps:.0f} req/s, p99 {r.p99_ms:.1f} ms, {r.errors} errors"
            print(f"  {r.scenario:<14} workers={r.workers}: {verdict} ({figures})")


def print_in_process(figures: dict[str, InProcess], results: list[Result]) -> None:
    """In-process figures beside the HTTP figures (at the best worker count) of the same operation."""
    print("\n" + table_line([name for name, _ in IN_PROCESS_COLUMNS], IN_PROCESS_COLUMNS))
    for scenario, local in figures.items():
        over_http = [r for r in results if r.scenario == scenario]
        if not over_http:
            continue
        best = max(over_http, key=lambda r: r.rps)
        ratios = [f"{best.rps / local.rate:.2f}", f"{best.server_cpu_ms / local.cpu_ms:.1f}"]
        cells = [scenario, f"{local.rate:.0f}", f"{local.cpu_ms:.2f}", f"{local.queries:.1f}"]
        cells += [f"{best.rps:.0f}", f"{best.server_cpu_ms:.2f}", *ratios]
        print(table_line(cells, IN_PROCESS_COLUMNS))
    print(
        "in-process: one thread calling gate_service (cpu: this process only, PostgreSQL not counted); "
        "HTTP: the best\nworker count; srv ms/req: CPU of the uvicorn processes per answered request; "
        "ratios: HTTP / in-process"
    )


# ------------------------------------------------------------------------------------ start-up, memory

STARTUP_PROBE = """
import resource, sys, time
started = time.perf_counter()
for module in sys.argv[1:]:
    __import__(module)
import api.main
api.main.create_app()
seconds = time.perf_counter() - started
print(seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "torch" in sys.modules)
"""
"""Imports (first the modules named on its command line), builds the app; prints seconds, peak RSS in
MiB and whether torch got imported."""


@dataclass(frozen=True)
class Startup:
    """One fresh interpreter importing the API and building the app."""

    seconds: float
    peak_mib: float
    torch_loaded: bool


def startup(url: str, home: Path, first: Sequence[str] = (), repeats: int = 3) -> Startup:
    """The fastest of ``repeats`` fresh interpreters (importing ``first`` before the API), with the
    peak resident memory of that one."""
    env = {**os.environ, "EVALGATE_DATABASE_URL": url, "EVALGATE_HOME": str(home)}
    runs = []
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", STARTUP_PROBE, *first], cwd=REPO_ROOT, env=env,
                             capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
        runs.append(Startup(float(out[0]), float(out[1]), out[2] == "True"))
    return min(runs, key=lambda run: run.seconds)


def print_startup(url: str, home: Path) -> None:
    """The API's import + app build as it is (no torch) beside the same with torch and transformers
    imported first (what it would cost if the API imported the modeling code)."""
    plain = startup(url, home)
    heavy = startup(url, home, ("torch", "transformers", "peft"))
    print("\nAPI process start-up (import + create_app, best of 3 fresh interpreters), peak memory:")
    print(f"  as it is:                  {plain.seconds:5.2f} s, {plain.peak_mib:5.0f} MiB, "
          f"torch loaded: {plain.torch_loaded}")  # fmt: skip
    ratios = (
        f"{heavy.seconds / plain.seconds:.1f}x the time, {heavy.peak_mib / plain.peak_mib:.1f}x the memory"
    )
    print(f"  with torch + transformers: {heavy.seconds:5.2f} s, {heavy.peak_mib:5.0f} MiB ({ratios})")


# ------------------------------------------------------------------------------------------------- main


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="uvicorn worker counts")
    parser.add_argument("--connections", type=int, default=16, help="concurrent keep-alive connections")
    parser.add_argument(
        "--generator",
        choices=("wrk", "asyncio"),
        default="wrk" if wrk_load.available() else "asyncio",
        help="load generator: wrk (C, one thread; the default when installed) or this script's asyncio one",
    )
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per scenario")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds before each")
    parser.add_argument("--scenarios", nargs="+", choices=SCENARIOS, default=list(SCENARIOS))
    parser.add_argument("--in-process-seconds", type=float, default=3.0, help="per in-process operation")
    parser.add_argument("--admin-url", default=ADMIN_URL, help="PostgreSQL URL allowed to create databases")
    parser.add_argument("--database", default="evalgate_bench_api", help="database to (re)create and drop")
    return parser.parse_args()


def main() -> None:
    """Seed, serve, load, report, clean up."""
    args = parse_args()
    seeds = itertools.count(1)  # seed 0 is POLICY's own: every fresh decision gets a seed never used
    url = reset_database(args.admin_url, args.database)
    try:
        with tempfile.TemporaryDirectory(prefix="evalgate-bench-api-") as folder:
            seeded = seed(url, Path(folder))
            print_header(args, url)
            print_startup(url, Path(folder))
            print_table_header()
            results = []
            for workers in args.workers:
                with serve(url, Path(folder), workers) as server:
                    for scenario in args.scenarios:
                        results.append(run_scenario(scenario, seeded, server, args, seeds))
                        print_result(results[-1])
            print_targets(results)
            print_in_process(in_process(seeded, args.in_process_seconds, seeds), results)
    finally:
        drop_database(args.admin_url, args.database, url)


if __name__ == "__main__":
    main()
