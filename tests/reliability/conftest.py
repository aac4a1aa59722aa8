"""Reliability fixtures: a private PostgreSQL cluster, and served APIs on fresh databases in it.

The cluster is the test session's own (``tests/reliability/postgres_cluster.py``), so a test may stop
and start it; the machine's shared server on 5432 is never touched. Without PostgreSQL's server
programs the tests that need the cluster are skipped, except under CI (``CI=true``), where that fails.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.reliability.postgres_cluster import ClusterError, PostgresCluster
from tests.reliability.served import ServedApi


@pytest.fixture(scope="session")
def private_postgres() -> Iterator[PostgresCluster]:
    """A running PostgreSQL cluster of this session's own; stopped and deleted afterwards."""
    try:
        cluster = PostgresCluster.create()
    except (ClusterError, OSError, KeyError, subprocess.TimeoutExpired) as error:
        message = f"cannot create a private PostgreSQL cluster: {error}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    try:
        yield cluster
    finally:
        cluster.remove()


@pytest.fixture
def serve(private_postgres: PostgresCluster, tmp_path: Path) -> Iterator[Callable[..., ServedApi]]:
    """``serve(clients, env=None)``: a seeded, served API on a fresh database of the private cluster;
    its processes are stopped when the test ends."""
    served: list[ServedApi] = []

    def launch(clients: int, env: dict[str, str] | None = None) -> ServedApi:
        if not private_postgres.running():
            private_postgres.start()  # a previous test's outage must not leak into this one
        url = private_postgres.create_database(f"reliability_{uuid.uuid4().hex[:12]}")
        api = ServedApi.launch(url, tmp_path, clients, env)
        served.append(api)
        return api

    yield launch
    for api in served:
        api.close()
