"""Real evalgate processes for service tests: `evalgate serve`, `evalgate worker`, the CLI, and the
tiny dataset and sweep config they work on."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from evalgate.core.settings import Settings

LEASE_SECONDS = 30
"""The job lease of the test processes: short enough that a killed worker's job is taken over within a
test, long enough that a heartbeat starved on a loaded 2-core machine never loses a running job."""
HEARTBEAT_SECONDS = 1
"""Progress shows within about a second; the lease outlasts 29 missed beats."""
SLOW_WORKER = Path(__file__).resolve().parent.parent / "slow_worker"
ANSWERS = ['{"name": "Ann", "quantity": 3}', '{"name": "Bo", "quantity": 1}']
EVALUATION = {"evaluators": ["exact_match", "perplexity"], "max_new_tokens": 8, "batch_size": 4,
              "device": "cpu", "precision": "fp32"}  # fmt: skip


def tiny_rows() -> list[dict[str, Any]]:
    """16 train rows, 6 target eval rows, 3 ood eval rows."""
    train = [{"id": f"t{i}", "question": "Extract the order.", "context": f"Order {i}.",
              "reference": ANSWERS[i % 2], "split": "train"} for i in range(16)]  # fmt: skip
    target = [{"id": f"e{i}", "question": "Extract the order.", "context": f"Order {i}.",
               "reference": ANSWERS[i % 2], "split": "eval"} for i in range(6)]  # fmt: skip
    capitals = [("France", "Paris"), ("Spain", "Madrid"), ("Italy", "Rome")]
    ood = [{"id": f"o{i}", "question": f"Capital of {country}?", "reference": city, "cohort": "ood",
            "split": "eval"} for i, (country, city) in enumerate(capitals)]  # fmt: skip
    return train + target + ood


def sweep_config(tiny_lm_dir: Path, max_steps: int) -> dict[str, Any]:
    """One rate on the tiny model, checkpoints every 2 steps."""
    return {"name": "e2e", "dataset": "tiny-e2e@v1", "base_model": str(tiny_lm_dir), "learning_rates": [1e-3],
            "max_steps": max_steps, "batch_size": 4, "max_seq_length": 96, "checkpoint_every": 2,
            "precision": "fp32", "device": "cpu",
            "lora": {"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]}}  # fmt: skip


def wait_until_healthy(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 120.0) -> None:
    """Poll ``url``/healthz until it answers 200; ``RuntimeError`` with the log's tail if the server
    exits first, ``TimeoutError`` if it is not up within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited {process.returncode}:\n{_tail(log)}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"no answer from {url}/healthz in {timeout:.0f} s:\n{_tail(log)}")


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:] if log.exists() else ""


class ServerPort:
    """A loopback TCP port the kernel picked, held by this process until ``close``.

    A bound socket that never listens holds the port (with ``SO_REUSEPORT``): while no server runs,
    connections to it are refused, and no other process can bind it. ``listener`` opens a listening
    socket on the same port for a server to serve on (``evalgate serve --fd``, the relay), so a server
    can stop and start again on the port and nothing can take it in between, which a port found free
    and released before the server binds it cannot promise.
    """

    def __init__(self) -> None:
        self._held = _reuse_port_socket()
        self._held.bind(("127.0.0.1", 0))
        self.number: int = self._held.getsockname()[1]

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.number}"

    def listener(self) -> socket.socket:
        """A new socket listening on the port; whoever serves on it closes it (and the port refuses
        connections again once every copy is closed)."""
        sock = _reuse_port_socket()
        try:
            sock.bind(("127.0.0.1", self.number))
            sock.listen(128)
        except BaseException:
            sock.close()
            raise
        return sock

    def close(self) -> None:
        """Let the port go."""
        self._held.close()

    def __enter__(self) -> ServerPort:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _reuse_port_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    return sock


class Service:
    """Starts evalgate processes with one environment; stops them all at the end."""

    def __init__(self, settings: Settings, logs: Path):
        self.env = {**os.environ, "EVALGATE_HOME": str(settings.home),
                    "EVALGATE_DATABASE_URL": settings.resolved_database_url,
                    "EVALGATE_JOB_LEASE_SECONDS": str(LEASE_SECONDS),
                    "EVALGATE_JOB_HEARTBEAT_SECONDS": str(HEARTBEAT_SECONDS), "COLUMNS": "200"}  # fmt: skip
        self.logs = logs
        self.processes: list[subprocess.Popen[bytes]] = []
        self.ports: list[ServerPort] = []

    def cli(self, *args: str) -> str:
        """Run an evalgate command to completion; its stdout."""
        done = subprocess.run([sys.executable, "-m", "evalgate", *args], env=self.env, capture_output=True,
                              text=True, timeout=120, check=True)  # fmt: skip
        return done.stdout.strip()

    def start(
        self, name: str, *args: str, seconds_per_step: float = 0.0, pass_fds: tuple[int, ...] = ()
    ) -> subprocess.Popen[bytes]:
        """Start a long-running evalgate command, logging to ``<logs>/<name>.log``; with
        ``seconds_per_step``, each training step and generate call of it sleeps that long first
        (``tests/slow_worker``), so a test can stop it mid-task. ``pass_fds`` are inherited."""
        env = self.env
        if seconds_per_step > 0:
            path = os.pathsep.join(filter(None, [str(SLOW_WORKER), env.get("PYTHONPATH")]))
            env = {**env, "PYTHONPATH": path, "EVALGATE_TEST_SECONDS_PER_STEP": str(seconds_per_step)}
        with (self.logs / f"{name}.log").open("wb") as log:
            process = subprocess.Popen([sys.executable, "-m", "evalgate", *args], env=env, stdout=log,
                                       stderr=subprocess.STDOUT, pass_fds=pass_fds)  # fmt: skip
        self.processes.append(process)
        return process

    def serve(
        self, name: str, *args: str, port: ServerPort | None = None
    ) -> tuple[subprocess.Popen[bytes], str]:
        """Start `evalgate serve` (with ``args``) on ``port``, a new one held until ``stop`` if not
        given; the process and its base URL. The server serves on a socket this process opened and
        hands down (``--fd``), so the port is the test's from before the server starts."""
        if port is None:
            port = ServerPort()
            self.ports.append(port)
        with port.listener() as listener:
            fd = listener.fileno()
            process = self.start(name, "serve", "--fd", str(fd), *args, pass_fds=(fd,))
        return process, port.url

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    process.kill()
        for port in self.ports:
            port.close()


def write_rows(path: Path) -> Path:
    """The tiny dataset as JSONL at ``path``."""
    path.write_text("".join(json.dumps(row) + "\n" for row in tiny_rows()))
    return path
