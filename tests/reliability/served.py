"""A real `evalgate serve` process on a fresh PostgreSQL database, seeded for a load, restartable.

    api = ServedApi.launch(cluster.create_database("x"), tmp_path, clients=4)
    load = Load(api.plan, clients=4).start()
    api.restart(signal.SIGKILL)               # same port, new process; clients retry meanwhile

The seed is what a load needs and nothing a model would: one dataset version, a base-model run and
``DECIDABLE`` candidates with finished, scored runs beside it (written straight to the database, as
the API tests do), adapter folders inside the artifact root to register, and one write token per
client (so the per-token rate limit applies to each client separately).
"""

from __future__ import annotations

import json
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import select

from evalgate.core.settings import Settings
from evalgate.data.store import DatasetStore
from evalgate.db.migrate import upgrade
from evalgate.db.models import DatasetVersion
from evalgate.db.session import engine_for, session_scope
from evalgate.service.api_tokens import create_token
from tests.api.service import ServerPort, Service, wait_until_healthy
from tests.reliability.load import LoadPlan
from tests.support.scored_runs import add_candidate, add_run

DECIDABLE = 4
ROWS = 40
ADAPTERS = 4
READY_TIMEOUT = 120.0


def seed(settings: Settings, clients: int, root: Path) -> LoadPlan:
    """Migrate and fill the database for a load of ``clients``; the plan (without the URL yet)."""
    upgrade(settings.resolved_database_url)
    store = DatasetStore.from_settings(settings)
    rows = root / "suite.jsonl"
    rows.write_text("".join(json.dumps({"id": f"r{i}", "question": "q"}) + "\n" for i in range(ROWS)))
    store.add("suite", [str(rows)])
    rng = np.random.default_rng(7)
    base = [float(x) for x in rng.uniform(0.0, 0.6, ROWS)]
    with session_scope(store.sessions) as session:
        version = session.scalars(select(DatasetVersion)).one()
        base_run = add_run(session, version, None, {("quality", "target"): base}, None)
        decidable = []
        for i in range(DECIDABLE):
            candidate = add_candidate(session, f"seeded-{i}")
            gained = [score + 0.1 * (i - 1) for score in base]
            add_run(session, version, candidate, {("quality", "target"): gained}, base_run)
            decidable.append(candidate)
    adapters = []
    for i in range(ADAPTERS):
        folder = Path(settings.resolved_artifact_root) / "adapters" / f"run-{i}"
        folder.mkdir(parents=True)
        (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 4, "seed": i}))
        (folder / "adapter_model.safetensors").write_bytes(bytes([i]) * 64)
        adapters.append(str(folder))
    tokens = [create_token(store.sessions, f"client-{i}", "write") for i in range(clients)]
    engine_for(settings.resolved_database_url).dispose()
    return LoadPlan(url="", tokens=tokens, decidable=decidable, adapters=adapters)


@dataclass
class ServedApi:
    """One `evalgate serve` on ``port``; ``restart`` replaces the process on the same port (held by the
    test throughout: refused while no server runs, never taken by another process)."""

    service: Service
    port: ServerPort
    plan: LoadPlan
    database_url: str
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @classmethod
    def launch(
        cls, database_url: str, root: Path, clients: int, env: dict[str, str] | None = None
    ) -> ServedApi:
        """Seed ``database_url`` and serve it; ready to answer when this returns."""
        settings = Settings(home=root / "home", database_url=database_url)
        plan = seed(settings, clients, root)
        service = Service(settings, root)
        service.env.update(env or {})
        port = ServerPort()
        service.ports.append(port)  # let go when the service stops
        plan = LoadPlan(**{**plan.__dict__, "url": port.url})
        served = cls(service=service, port=port, plan=plan, database_url=database_url)
        try:
            served.start()
        except BaseException:
            service.stop()
            raise
        return served

    @property
    def url(self) -> str:
        return self.plan.url

    def start(self) -> None:
        """Start a serve process (log ``api-N.log``) and wait until ``/healthz`` answers 200."""
        self.starts += 1
        self.process, _ = self.service.serve(f"api-{self.starts}", port=self.port)
        log = self.service.logs / f"api-{self.starts}.log"
        wait_until_healthy(self.url, self.process, log, READY_TIMEOUT)

    def stop(self, sig: signal.Signals) -> int:
        """Send ``sig`` to the serve process and wait for it to end; its exit code."""
        assert self.process is not None
        self.process.send_signal(sig)
        return self.process.wait(60)

    def restart(self, sig: signal.Signals) -> None:
        """Stop the process with ``sig`` and start a new one on the same port."""
        self.stop(sig)
        self.start()

    def close(self) -> None:
        self.service.stop()

    def log_tail(self, lines: int = 30) -> str:
        log = self.service.logs / f"api-{self.starts}.log"
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else ""
