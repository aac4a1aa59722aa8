"""Schemathesis over every operation of the OpenAPI document: no generated request gets a 5xx, and
every 4xx is a problem document (RFC 9457).

    EVALGATE_FIGURES_FILE=/tmp/figures.jsonl pytest tests/reliability/test_openapi_fuzz.py -m reliability

The app runs in-process (ASGI) on a database that already holds a dataset with two versions, a
finished sweep with candidates, evaluation runs with row scores, gate decisions, a promotion, a
queued job and a revocable token, so that generated ids, names and refs sometimes reach real rows
instead of stopping at a 404. Every request carries an admin token, so it gets past authentication
and reaches the handler. Each operation gets schema-conforming (positive) and schema-violating
(negative) cases; every 5xx (or exception escaping the app, which a server turns into a 500) is
counted rather than stopping at the first, then the figure is recorded and asserted to be zero.
"""

from __future__ import annotations

import json
import secrets
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from sqlalchemy import select

from api.main import create_app
from evalgate.core.settings import Settings
from evalgate.data.store import DatasetStore
from evalgate.db.models import EvaluationRun, GateDecision
from evalgate.db.session import session_scope
from evalgate.gate.service import PromotionRefused, promote
from evalgate.service.api_tokens import create_token
from evalgate.service.handlers import SWEEP
from evalgate.service.jobs import enqueue
from tests.reliability.figures import record
from tests.support.sweep_data import DATASET, POLICY, dataset_rows, seed_weekly_sweep

pytestmark = pytest.mark.reliability

EXAMPLES = {"sqlite": {GenerationMode.POSITIVE: 40, GenerationMode.NEGATIVE: 20}}
EXAMPLES["postgresql"] = {GenerationMode.POSITIVE: 24, GenerationMode.NEGATIVE: 12}
MIN_CASES = {"sqlite": 1000, "postgresql": 500}
REVOCABLE = "revocable"
"""A token the fuzzer may revoke (the one it authenticates with has an unguessable name)."""

schemathesis.serializer.alias("application/x-ndjson", "text/plain")


@dataclass
class Tally:
    """Cases sent per operation, and the ones answered with a 5xx (or an escaping exception)."""

    cases: dict[str, int] = field(default_factory=dict)
    server_errors: list[str] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    """Answers by status code: shows the cases got past authentication and reached real rows."""
    not_problems: list[str] = field(default_factory=list)
    """4xx answers that are not RFC 9457 problem documents."""

    @property
    def total(self) -> int:
        """Every case sent, all operations together."""
        return sum(self.cases.values())

    def fail(self, case: Case, what: str) -> None:
        """Keep a 5xx with what reproduces it."""
        self.server_errors.append(f"{case.operation.label}: {what}\n    {case.as_curl_command()}")


def seed(store: DatasetStore, folder: Path) -> dict[str, list[Any]]:
    """Fill the database with real objects; return real values per parameter or body field name."""
    seeded = seed_weekly_sweep(store, folder)
    v2 = folder / "v2.jsonl"
    v2.write_text("".join(json.dumps(row) + "\n" for row in dataset_rows(week=2)[:50]))
    store.add(DATASET, [str(v2)])
    job_id = enqueue(store.sessions, SWEEP, {"config": {}})
    with session_scope(store.sessions) as session:
        runs = list(session.scalars(select(EvaluationRun.id)))
        decisions = list(session.scalars(select(GateDecision.id)))
    for candidate_id in seeded.candidates.values():
        try:
            promote(store.sessions, candidate_id, promoted_by="seed")
            break
        except PromotionRefused:
            continue
    create_token(store.sessions, REVOCABLE, "read")
    adapter = Path(store.artifact_root) / "adapters" / "run-1"
    adapter.mkdir(parents=True)
    (adapter / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 4}))
    return {
        "candidate_id": list(seeded.candidates.values()),
        "sweep_id": [seeded.sweep_id],
        "run_id": runs,
        "decision_id": decisions,
        "job_id": [job_id],
        "name": [DATASET, REVOCABLE],
        "ref": [DATASET, f"{DATASET}@v1", f"{DATASET}@v2", f"{DATASET}@latest"],
        "dataset": [f"{DATASET}@v1", f"{DATASET}@v2"],
        "old": [1, 2],
        "new": [1, 2],
        "baseline": ["auto", "base", "promoted", seeded.base_run_id],
        "base_model": ["HuggingFaceTB/SmolLM2-135M"],
        "evaluator": ["json_validation", "answer_accuracy"],
        "cohort": ["target", "ood"],
        "status": ["queued", "finished"],
        "policy": [POLICY.to_dict()],
        "adapter_uri": [str(adapter)],
    }


def aim(case: Case, real: dict[str, list[Any]], draw: Callable[[st.SearchStrategy[Any]], Any]) -> None:
    """Swap some generated path, query and body values for real ones, so cases reach stored rows."""
    containers = [case.path_parameters, case.query, case.body if isinstance(case.body, dict) else None]
    for container in containers:
        for key in list(container or {}):
            if key in real and draw(st.booleans()):
                assert container is not None
                container[key] = draw(st.sampled_from(real[key]))


def fuzz_operation(
    operation: Any,
    mode: GenerationMode,
    count: int,
    headers: dict[str, str],
    real: dict[str, list[Any]],
    tally: Tally,
) -> None:
    """Send up to ``count`` generated cases of ``mode`` to one operation; tally the answers."""
    label = f"{operation.label} [{mode.value}]"
    tally.cases.setdefault(label, 0)

    @hypothesis_settings(
        max_examples=count,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode), data=st.data())
    def send(case: Case, data: st.DataObject) -> None:
        aim(case, real, data.draw)
        tally.cases[label] += 1
        try:
            response = case.call(headers=headers)
        except Exception as error:  # escaped every handler: a real server answers it with a 500
            tally.fail(case, f"{type(error).__name__}: {error}")
            return
        tally.statuses[response.status_code] += 1
        if 400 <= response.status_code < 500 and not is_problem(response):
            tally.not_problems.append(f"{case.operation.label}: {response.status_code} {response.text[:200]}")
        try:
            case.validate_response(response, checks=[not_a_server_error], headers=headers)
        except (AssertionError, FailureGroup) as failure:
            tally.fail(case, f"{response.status_code} {response.text[:300]} ({failure})")

    try:
        send()
    except Unsatisfiable:
        if mode is not GenerationMode.NEGATIVE or tally.cases[label]:
            raise
        del tally.cases[label]  # nothing in this operation's schema can be violated (no parameters)


def is_problem(response: Any) -> bool:
    """An ``application/problem+json`` body with the members every problem has."""
    kind = response.headers.get("content-type") or [""]  # schemathesis keeps each header's values in a list
    if not str(kind[0] if isinstance(kind, list) else kind).startswith("application/problem+json"):
        return False
    body = response.json()
    return isinstance(body, dict) and {"type", "title", "status", "detail"} <= body.keys()


def fuzz_settings(tmp_path: Path, database_url: str) -> Settings:
    """Settings for one fuzzing run: the per-token rate limit off (a fuzzer is not a client to slow
    down, and a 429 would hide what the handler does with the request)."""
    return Settings(
        home=tmp_path / "home", database_url=database_url, rate_limit_per_second=0, auth_failures_per_minute=0
    )


def run_schemathesis(settings: Settings, tmp_path: Path, backend: str) -> Tally:
    """Seed the database, load the app's OpenAPI document, and fuzz every operation in both modes."""
    store = DatasetStore.from_settings(settings)
    real = seed(store, tmp_path)
    admin = create_token(store.sessions, f"fuzz-admin-{secrets.token_hex(16)}", "admin")
    headers = {"Authorization": f"Bearer {admin}"}
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(settings))
    # Every case carries the admin token: negative cases break the request, not its authentication
    # (tests/api/test_auth.py covers missing and bad tokens).
    schema.config.generation.update(with_security_parameters=False)
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    assert len(operations) >= 20, [op.label for op in operations]
    tally = Tally()
    for operation in operations:
        for mode, count in EXAMPLES[backend].items():
            fuzz_operation(operation, mode, count, headers, real, tally)
    return tally


def check_and_record(tally: Tally, name: str, minimum: int) -> None:
    """Record the figures, then fail on any 5xx (listing every one) or too few cases."""
    record("bad_input", name, cases=tally.total, server_errors=len(tally.server_errors))
    assert not tally.server_errors, "\n".join(tally.server_errors)
    assert not tally.not_problems, "\n".join(tally.not_problems[:20])
    assert tally.total >= minimum, tally.cases
    reached = {label.split(" [")[0] for label, count in tally.cases.items() if count}
    assert len(reached) == len({label.split(" [")[0] for label in tally.cases}), tally.cases


def test_no_generated_request_gets_a_server_error(tmp_path: Path) -> None:
    """SQLite, in-process: at least 1,000 cases over every operation, none answered with a 5xx."""
    from evalgate.db.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'evalgate.db'}"
    upgrade(url)
    settings = fuzz_settings(tmp_path, url)
    tally = run_schemathesis(settings, tmp_path, "sqlite")
    check_and_record(tally, "schemathesis: every operation", MIN_CASES["sqlite"])


@pytest.mark.postgres
def test_no_generated_request_gets_a_server_error_on_postgresql(tmp_path: Path, postgres_url: str) -> None:
    """The same on PostgreSQL, with fewer cases (its constraints and types differ from SQLite's)."""
    from tests.conftest import _truncate_all

    _truncate_all(postgres_url)
    settings = fuzz_settings(tmp_path, postgres_url)
    tally = run_schemathesis(settings, tmp_path, "postgresql")
    check_and_record(tally, "schemathesis: every operation (PostgreSQL)", MIN_CASES["postgresql"])
