"""pytest plugin: gate decisions as test assertions (registered by installing evalgate, ``pytest11``).

    def test_candidate_ships(evalgate_gate):
        decision = evalgate_gate.decide(candidate_id=7, policy="policy.yaml")
        assert_passes(decision)

    def test_latest_decision_passes(evalgate_gate):
        evalgate_gate.assert_candidate_passes(7)          # the latest stored decision

    assert_candidate_passes("postgresql+psycopg://ci@db/evalgate", 7, policy)   # without the fixture

The ``evalgate_gate`` fixture (session-wide) connects to the database given by ``--evalgate-database-url``,
else by the environment (``EVALGATE_DATABASE_URL``, else SQLite under ``EVALGATE_HOME``), and checks that
its schema is at evalgate's latest migration. ``decide`` runs the gate (``evalgate.gate.service``:
stored, idempotent) and returns the stored decision; ``assert_passes`` fails the test with
``GateBlockedError`` when a decision blocks, listing the decisive checks, the ones that block:

    check  verdict  oriented delta  95% interval  margin  n

The oriented delta is ``s * (candidate mean - baseline mean)`` with ``s = +1`` for higher-is-better
evaluators and ``-1`` otherwise, so a negative delta is a regression; the interval is the check's
two-sided interval at the policy's confidence (before the Holm correction; each check's reason states
its Holm-corrected interval, the one the verdict rests on), and a check passes when that bound stays
above ``-margin``. Disable the plugin with ``-p no:evalgate``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

import pytest

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from evalgate.gate.policy import GatePolicy
    from evalgate.gate.service import StoredDecision

DATABASE_OPTION = "--evalgate-database-url"
DECIDED_BY = "pytest"
"""``decided_by`` of the decisions this plugin stores."""

PolicyLike: TypeAlias = "GatePolicy | str | Path | Mapping[str, Any]"
"""A ``GatePolicy``, the path of its YAML file, or its data."""


class GateBlockedError(AssertionError):
    """A gate decision blocked the candidate; the message lists the decisive checks."""


class GateDatabaseError(LookupError):
    """The database is missing, unreachable or not at evalgate's latest migration; the message says what
    to do."""


class DecisionLike(Protocol):
    """A stored decision (``evalgate.gate.service.StoredDecision``) or a fresh one (``decide.Decision``)."""

    @property
    def verdict(self) -> str:
        """pass or block."""
        ...

    @property
    def evidence(self) -> dict[str, Any]:
        """The decision's evidence: its policy and each check's statistics."""
        ...


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--evalgate-database-url``: the database the ``evalgate_gate`` fixture reads and writes."""
    group = parser.getgroup("evalgate", "evalgate gate decisions")
    group.addoption(
        DATABASE_OPTION,
        dest="evalgate_database_url",
        default=None,
        metavar="URL",
        help="SQLAlchemy URL of the evalgate database (default: EVALGATE_DATABASE_URL, else the "
        "SQLite file under EVALGATE_HOME)",
    )


@pytest.fixture(scope="session")
def evalgate_gate(request: pytest.FixtureRequest) -> EvalgateGate:
    """The evalgate database of this run (``--evalgate-database-url`` or the environment), checked to be
    at evalgate's latest migration."""
    url = request.config.getoption("evalgate_database_url") or _environment_url()
    try:
        check_schema(url)
    except GateDatabaseError as error:
        pytest.fail(str(error), pytrace=False)
    return EvalgateGate.connect(url)


def _environment_url() -> str:
    from evalgate.core.settings import Settings

    return Settings().resolved_database_url


def check_schema(url: str) -> None:
    """Raise ``GateDatabaseError``, saying what to do, unless ``url`` holds a database at evalgate's
    latest migration.

    A SQLite file that does not exist is reported, not created.
    """
    from sqlalchemy.exc import SQLAlchemyError

    from evalgate.db.migrate import current_revision, head_revision

    shown = _display(url)
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        raise GateDatabaseError(
            f"evalgate database {shown}: no such file; pass {DATABASE_OPTION} or set EVALGATE_DATABASE_URL"
        )
    try:
        current, head = current_revision(url), head_revision(url)
    except SQLAlchemyError as error:
        raise GateDatabaseError(f"evalgate database {shown}: {str(error).splitlines()[0]}") from error
    if current != head:
        state = "has no evalgate schema" if current is None else f"is at migration {current}, not {head}"
        raise GateDatabaseError(
            f"evalgate database {shown} {state}: run `EVALGATE_DATABASE_URL=... evalgate db upgrade`"
        )


def _display(url: str) -> str:
    from evalgate.core.settings import Settings

    return Settings(database_url=url).display_database_url


@dataclass(frozen=True)
class EvalgateGate:
    """One evalgate database: decide candidates, read their decisions, assert that they pass."""

    sessions: sessionmaker[Session] = field(repr=False)
    database_url: str
    """The database's URL as shown (any password masked)."""

    @classmethod
    def connect(cls, url: str) -> EvalgateGate:
        """The database at ``url`` (one shared engine per URL in this process)."""
        from evalgate.db.session import session_factory

        return cls(session_factory(url), _display(url))

    @classmethod
    def on(cls, sessions: sessionmaker[Session]) -> EvalgateGate:
        """The database of an existing session factory."""
        bind = sessions.kw.get("bind")
        return cls(sessions, str(bind.url) if bind is not None else "?")

    def decide(
        self, candidate_id: int, policy: PolicyLike, *, baseline: str | int = "auto"
    ) -> StoredDecision:
        """The gate's decision on the candidate's latest finished run (stored; the same runs and policy
        return the stored one). ``policy``: a ``GatePolicy``, a YAML file or its data; ``baseline``:
        auto, base, promoted or a run id (``evalgate.gate.service.decide_candidate``)."""
        from evalgate.gate.service import decide_candidate

        return decide_candidate(
            self.sessions, candidate_id, load_policy(policy), baseline=baseline, decided_by=DECIDED_BY
        )

    def latest_decision(self, candidate_id: int) -> StoredDecision:
        """The candidate's newest stored decision; ``LookupError`` when it has none."""
        from evalgate.gate.service import list_decisions

        found = list_decisions(self.sessions, candidate_id, limit=1)
        if not found:
            raise LookupError(f"candidate {candidate_id} has no gate decision: pass a policy to decide it")
        return found[0]

    def assert_candidate_passes(
        self, candidate_id: int, policy: PolicyLike | None = None, *, baseline: str | int = "auto"
    ) -> StoredDecision:
        """Decide the candidate under ``policy`` (or, without one, read its latest decision) and raise
        ``GateBlockedError`` unless it passes; returns the decision."""
        __tracebackhide__ = True  # a failure points at the calling test, not here
        decision = (
            self.latest_decision(candidate_id)
            if policy is None
            else self.decide(candidate_id, policy, baseline=baseline)
        )
        assert_passes(decision)
        return decision


def assert_candidate_passes(
    sessions_or_url: sessionmaker[Session] | str,
    candidate_id: int,
    policy: PolicyLike | None = None,
    *,
    baseline: str | int = "auto",
) -> StoredDecision:
    """``EvalgateGate.assert_candidate_passes`` on a database URL or a session factory."""
    __tracebackhide__ = True
    if isinstance(sessions_or_url, str):
        gate = EvalgateGate.connect(sessions_or_url)
    else:
        gate = EvalgateGate.on(sessions_or_url)
    return gate.assert_candidate_passes(candidate_id, policy, baseline=baseline)


def load_policy(policy: PolicyLike) -> GatePolicy:
    """A ``GatePolicy`` from itself, a YAML file path, or its data (validated: ``PolicyError`` names the
    bad field)."""
    from evalgate.gate.policy import GatePolicy

    if isinstance(policy, GatePolicy):
        return policy
    if isinstance(policy, str | Path):
        return GatePolicy.from_yaml(Path(policy))
    if isinstance(policy, Mapping):
        return GatePolicy.from_dict(dict(policy))
    raise TypeError(f"policy must be a GatePolicy, a YAML path or a mapping, got {type(policy).__name__}")


def assert_passes(decision: DecisionLike) -> None:
    """Raise ``GateBlockedError`` listing the decisive checks unless ``decision`` passes."""
    __tracebackhide__ = True
    if decision.verdict == "pass":
        return
    raise GateBlockedError(blocked_message(decision))


def blocking_checks(decision: DecisionLike) -> list[dict[str, Any]]:
    """The checks whose verdict blocks (anything but pass; inconclusive too unless the policy says
    ``inconclusive: pass``), from the decision's evidence."""
    allowed = {"pass"}
    if decision.evidence.get("policy", {}).get("inconclusive") == "pass":
        allowed.add("inconclusive")
    return [check for check in decision.evidence.get("checks", []) if check.get("verdict") not in allowed]


def blocked_message(decision: DecisionLike) -> str:
    """Why ``decision`` blocks: a header naming the decision, then one line per decisive check
    (evaluator/cohort, verdict, oriented delta, its interval, the margin, n rows) and its reason."""
    policy = decision.evidence.get("policy", {})
    level = f"{float(policy.get('confidence', 0.95)):.0%} interval"
    decisive = blocking_checks(decision)
    header = ("check", "verdict", "oriented delta", level, "margin", "n")
    table = [header] + [_check_cells(check) for check in decisive]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = [_header(decision, policy)]
    for row, check in zip(table, [None, *decisive], strict=True):
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        lines.append(("  " + "  ".join(cells)).rstrip())
        if check is not None:
            lines.append(f"      {check.get('reason', '')}")
    passing = [c["check"] for c in decision.evidence.get("checks", []) if c not in decisive]
    lines.append(f"  not decisive: {', '.join(passing) or '-'}")
    lines.append("  (oriented delta: candidate - baseline, sign-flipped for lower-is-better; < 0 is worse)")
    return "\n".join(lines)


def _header(decision: DecisionLike, policy: Mapping[str, Any]) -> str:
    from evalgate.gate.service import StoredDecision

    who, where = "the candidate", ""
    if isinstance(decision, StoredDecision):
        who = f"candidate {decision.candidate_id}"
        where = (
            f"decision {decision.id}: run {decision.candidate_run_id} "
            f"vs baseline run {decision.baseline_run_id}, "
        )
    digest = str(decision.evidence.get("policy_sha256", ""))[:12]
    return f"evalgate gate blocked {who} ({where}policy {policy.get('name', '?')} {digest}):"


def _check_cells(check: Mapping[str, Any]) -> tuple[str, str, str, str, str, str]:
    interval = check.get("ci_95")
    shown = f"[{interval[0]:+.4f}, {interval[1]:+.4f}]" if interval else "-"
    return (
        str(check.get("check", "?")),
        str(check.get("verdict", "?")),
        _signed(check.get("oriented_delta")),
        shown,
        f"{check['margin']:.4f}" if check.get("margin") is not None else "-",
        str(check.get("n", "-")),
    )


def _signed(value: float | None) -> str:
    return "-" if value is None else f"{value:+.4f}"
