"""A load of pipeline clients against a served API, and the audit of what they were told.

    load = Load(plan, clients=20).start()     # threads, each an evalgate.client.Client
    ...                                       # inject faults meanwhile, or just wait
    result = load.finish()                    # stop, join; what the clients were told and saw
    found = audit(database_url, result)       # every accepted record present, none duplicated

Each client thread alternates two writes, as a training pipeline would: register a new candidate
(a unique name, so every accepted registration is one new row) and request a gate decision for one
of the seeded candidates under a policy with a seed of its own (so every accepted decision is one
new row), reading the decision back. Both POSTs are idempotent by design, so the client retries them
through 429, 503, refused and dropped connections; any call that still fails is a failure of the run.
Every HTTP answer and transport error is counted by the clients' transport, for the figures.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx
from sqlalchemy import create_engine, select

from evalgate.client import Client
from evalgate.db.models import Candidate, GateDecision, Job
from tests.reliability.figures import record

RESAMPLES = 100
"""Bootstrap resamples of the load's policies: the gate's minimum, to keep each decision cheap."""


def policy(seed: int) -> dict[str, object]:
    """A one-check policy whose seed makes its hash (and so its decision) unique."""
    return {"checks": [{"evaluator": "quality", "cohort": "target", "margin": 0.05}],
            "resamples": RESAMPLES, "seed": seed}  # fmt: skip


class CountingTransport(httpx.HTTPTransport):
    """An HTTP transport that counts every answer by status and every transport error by type."""

    def __init__(self) -> None:
        super().__init__()
        self.statuses: Counter[int] = Counter()
        self.errors: Counter[str] = Counter()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        try:
            response = super().handle_request(request)
        except httpx.TransportError as error:
            self.errors[type(error).__name__] += 1
            raise
        self.statuses[response.status_code] += 1
        return response


@dataclass(frozen=True)
class LoadPlan:
    """Where and what the clients send: one token per client, seeded candidates with finished runs
    (to decide), adapter folders (to register), and the prefix of registered candidates' names."""

    url: str
    tokens: list[str]
    decidable: list[int]
    adapters: list[str]
    base_model: str = "m"
    prefix: str = "load"
    retries: int = 10
    backoff: float = 0.25
    sweeps: bool = False
    """Every third call submits a sweep (a POST that only its idempotency key makes safe to resend)."""


@dataclass
class LoadResult:
    """What the clients were told (ids of accepted records) and saw (statuses, errors, failures)."""

    registered: dict[int, str] = field(default_factory=dict)
    """Candidate id -> the name it was registered under."""
    decided: dict[int, str] = field(default_factory=dict)
    """Decision id -> the policy hash it was made under."""
    submitted: dict[int, str] = field(default_factory=dict)
    """Sweep job id -> the name of the sweep it runs."""
    failures: list[str] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def accepted(self) -> int:
        """Writes the clients were told succeeded."""
        return len(self.registered) + len(self.decided) + len(self.submitted)

    @property
    def requests(self) -> int:
        """HTTP requests answered (any status), retries included."""
        return sum(self.statuses.values())

    def summary(self) -> str:
        """One line for the test output: rate, accepted writes, 429/503 and transport-error counts."""
        rate = self.requests / self.seconds if self.seconds else 0.0
        return (f"{self.requests} requests in {self.seconds:.1f} s ({rate:.1f}/s); accepted "
                f"{len(self.registered)} registrations + {len(self.decided)} decisions + "
                f"{len(self.submitted)} sweeps; "
                f"429: {self.statuses[429]}, 503: {self.statuses[503]}, "
                f"transport errors: {dict(self.errors) or 0}, failures: {len(self.failures)}")  # fmt: skip


class Load:
    """``clients`` threads driving ``plan`` until ``finish`` (or ``seconds``, when given)."""

    def __init__(self, plan: LoadPlan, clients: int, seconds: float | None = None):
        self.plan, self.clients, self.seconds = plan, clients, seconds
        self.result = LoadResult()
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._drive, args=(i,), name=f"load-{i}", daemon=True)
                        for i in range(clients)]  # fmt: skip
        self.started = 0.0
        self.finished = False

    def start(self) -> Load:
        self.started = time.monotonic()
        for thread in self.threads:
            thread.start()
        return self

    def __enter__(self) -> Load:
        return self.start()

    def __exit__(self, *_: object) -> None:
        """Stop the clients even when the test failed midway (``finish`` is called once)."""
        if not self.finished:
            self.stopping.set()
            self.finish(timeout=30.0)

    def accepted(self) -> int:
        """Writes accepted so far (to wait for the load to be under way)."""
        with self.lock:
            return self.result.accepted

    def finish(self, timeout: float = 180.0) -> LoadResult:
        """Wait out ``seconds`` (if given), then stop the clients after their current call and wait for
        them (up to ``timeout``); the result."""
        if self.seconds is not None:
            self.stopping.wait(max(0.0, self.started + self.seconds - time.monotonic()))
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout)
        alive = [thread.name for thread in self.threads if thread.is_alive()]
        if alive:
            self.result.failures.append(f"clients still running after {timeout:.0f} s: {alive}")
        self.result.seconds = time.monotonic() - self.started
        self.finished = True
        return self.result

    def _drive(self, index: int) -> None:
        """One client: register and decide in turn until told to stop, recording every answer."""
        plan, transport = self.plan, CountingTransport()
        deadline = self.started + self.seconds if self.seconds is not None else float("inf")
        client = Client(plan.url, plan.tokens[index % len(plan.tokens)], retries=plan.retries,
                        backoff=plan.backoff, transport=transport)  # fmt: skip
        step = 0
        try:
            while not self.stopping.is_set() and time.monotonic() < deadline:
                step += 1
                try:
                    self._step(client, index, step)
                except Exception as error:  # every failed call is reported, none stops the others
                    with self.lock:
                        self.result.failures.append(
                            f"client {index} step {step}: {type(error).__name__}: {error}"
                        )
        finally:
            client.close()
            with self.lock:
                self.result.statuses.update(transport.statuses)
                self.result.errors.update(transport.errors)

    def _step(self, client: Client, index: int, step: int) -> None:
        plan = self.plan
        if plan.sweeps and step % 3 == 0:
            name = f"{plan.prefix}-{index}-{step}"
            job = client.submit_sweep({"dataset": "suite@v1", "name": name, "learning_rates": [1e-3]})
            with self.lock:
                self.result.submitted[job["id"]] = name
            return
        if step % 2:
            name = f"{plan.prefix}-{index}-{step}"
            adapter = plan.adapters[(index + step) % len(plan.adapters)]
            registered = client.register_candidate(name, base_model=plan.base_model, adapter_uri=adapter)
            with self.lock:
                self.result.registered[registered["id"]] = name
            return
        candidate = plan.decidable[(index + step) % len(plan.decidable)]
        decision = client.decide(candidate, policy(seed=index * 1_000_000 + step))
        with self.lock:
            self.result.decided[decision["id"]] = decision["policy_hash"]
        read = client.decision(decision["id"])
        if (read["id"], read["verdict"]) != (decision["id"], decision["verdict"]):
            raise AssertionError(f"decision {decision['id']} read back as {read}")


@dataclass(frozen=True)
class Audit:
    """Accepted records missing from the database, and records stored more than once."""

    lost_registrations: list[int]
    lost_decisions: list[int]
    duplicate_registrations: int
    duplicate_decisions: int
    unreported: int
    lost_jobs: list[int] = field(default_factory=list)
    duplicate_jobs: int = 0
    """Rows the clients were never told about (a call that landed but failed for its client)."""

    @property
    def lost(self) -> int:
        return len(self.lost_registrations) + len(self.lost_decisions) + len(self.lost_jobs)


def audit(database_url: str, result: LoadResult, prefix: str = "load") -> Audit:
    """Compare what the clients were told with what the database holds."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            candidates = dict(
                connection.execute(
                    select(Candidate.id, Candidate.name).where(Candidate.name.like(f"{prefix}-%"))
                ).all()
            )
            columns = (GateDecision.id, GateDecision.policy_hash, GateDecision.candidate_run_id,
                       GateDecision.baseline_run_id)  # fmt: skip
            decisions = connection.execute(select(*columns)).all()
            sweep_jobs = connection.execute(select(Job.id, Job.payload).where(Job.kind == "sweep"))
            jobs = {row.id: str(row.payload["config"]["name"]) for row in sweep_jobs}
    finally:
        engine.dispose()
    stored_decisions = {row.id: row.policy_hash for row in decisions}
    return Audit(
        lost_registrations=[i for i, name in result.registered.items() if candidates.get(i) != name],
        lost_decisions=[i for i, digest in result.decided.items() if stored_decisions.get(i) != digest],
        duplicate_registrations=len(candidates) - len(set(candidates.values())),
        duplicate_decisions=len(decisions) - len({tuple(row[1:]) for row in decisions}),
        unreported=len(candidates.keys() - result.registered.keys())
        + len(stored_decisions.keys() - result.decided.keys())
        + len(jobs.keys() - result.submitted.keys()),
        lost_jobs=[i for i, name in result.submitted.items() if jobs.get(i) != name],
        duplicate_jobs=len(jobs) - len(set(jobs.values())),
    )


@contextmanager
def injected_fault(name: str) -> Iterator[Callable[[bool], None]]:
    """Count one injected fault named ``name`` in the figures: survived as the block reports it through
    the callable it is given, not survived when the block raises before reporting."""
    outcome = {"survived": False}
    try:
        yield lambda survived: outcome.update(survived=survived)
    finally:
        record("fault", name, injected=1, survived=int(outcome["survived"]))
