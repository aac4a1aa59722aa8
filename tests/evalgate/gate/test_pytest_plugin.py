"""The pytest plugin ``evalgate.testing``: a test file run by pytest's own ``pytester`` against a seeded
database passes on a passing decision and fails on a blocking one, its output naming the decisive
checks with their intervals."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

import evalgate.testing
from evalgate.core.paths import REPO_ROOT
from evalgate.data.store import DatasetStore
from evalgate.gate.decide import ScoreTable, decide
from evalgate.gate.policy import Check, GatePolicy
from evalgate.gate.service import StoredDecision, list_decisions
from evalgate.testing import GateBlockedError, assert_candidate_passes, assert_passes, blocking_checks
from tests.support.sweep_data import POLICY, seed_weekly_sweep

pytest_plugins = ["pytester"]

INNER_TESTS = """
from evalgate.testing import assert_candidate_passes, assert_passes


def test_passing_candidate(evalgate_gate):
    assert_passes(evalgate_gate.decide({passing}, "policy.yaml"))


def test_blocked_candidate(evalgate_gate):
    evalgate_gate.assert_candidate_passes({blocked}, "policy.yaml")


def test_latest_stored_decision(evalgate_gate):
    assert_candidate_passes(evalgate_gate.sessions, {passing})
"""


def _decisions(store: DatasetStore, tmp_path: Path) -> tuple[StoredDecision, StoredDecision]:
    """Seed the weekly sweep (gated under ``POLICY``); its latest passing and blocking decisions."""
    seed_weekly_sweep(store, tmp_path)
    decisions = list_decisions(store.sessions)
    passing = next(d for d in decisions if d.verdict == "pass")
    blocked = next(d for d in decisions if d.verdict == "block")
    return passing, blocked


def _write_policy(pytester: pytest.Pytester) -> None:
    (pytester.path / "policy.yaml").write_text(yaml.safe_dump(json.loads(json.dumps(POLICY.to_dict()))))


def _decisive_line(check: dict[str, Any]) -> str:
    """A regular expression for the table line of one decisive check."""
    low, high = check["ci_95"]
    cells = [
        re.escape(str(check["check"])),
        re.escape(str(check["verdict"])),
        re.escape(f"{check['oriented_delta']:+.4f}"),
        re.escape(f"[{low:+.4f}, {high:+.4f}]"),
        re.escape(f"{check['margin']:.4f}"),
        re.escape(str(check["n"])),
    ]
    return r"\s+" + r"\s+".join(cells) + r"\s*$"


def test_the_plugin_is_registered_by_installing_evalgate(pytester: pytest.Pytester) -> None:
    """pyproject.toml declares the ``pytest11`` entry point, and pytest, finding it among the installed
    distributions, loads ``evalgate.testing`` under the name ``evalgate``."""
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]

    config = pytester.parseconfig()

    assert project["entry-points"]["pytest11"] == {"evalgate": "evalgate.testing"}
    assert config.pluginmanager.get_plugin("evalgate") is evalgate.testing


def test_passing_decision_passes_and_blocking_one_fails_with_its_checks(
    pytester: pytest.Pytester, store: DatasetStore, database_url: str, tmp_path: Path
) -> None:
    passing, blocked = _decisions(store, tmp_path)
    _write_policy(pytester)
    pytester.makepyfile(
        test_gate=INNER_TESTS.format(passing=passing.candidate_id, blocked=blocked.candidate_id)
    )

    result = pytester.runpytest("--evalgate-database-url", database_url, "-p", "no:cacheprovider")

    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*test_blocked_candidate*", "*GateBlockedError*"])
    decisive = blocking_checks(blocked)
    assert decisive, "a blocked decision has a decisive check"
    output = result.stdout.str()
    assert f"evalgate gate blocked candidate {blocked.candidate_id} (decision " in output
    result.stdout.re_match_lines([r"E\s+check\s+verdict\s+oriented delta\s+95% interval\s+margin\s+n\s*$"])
    result.stdout.re_match_lines([r"E" + _decisive_line(check) for check in decisive])
    not_decisive = [c["check"] for c in blocked.evidence["checks"] if c not in decisive]
    assert f"not decisive: {', '.join(not_decisive) or '-'}" in output


def test_database_url_comes_from_the_environment(
    pytester: pytest.Pytester,
    store: DatasetStore,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without the option, ``EVALGATE_DATABASE_URL``; no policy: the latest stored decision is read."""
    passing, blocked = _decisions(store, tmp_path)
    monkeypatch.setenv("EVALGATE_DATABASE_URL", database_url)
    pytester.makepyfile(
        test_stored=f"""
        from evalgate.testing import assert_candidate_passes

        def test_passing(evalgate_gate):
            assert evalgate_gate.assert_candidate_passes({passing.candidate_id}).id == {passing.id}

        def test_blocked(evalgate_gate):
            evalgate_gate.assert_candidate_passes({blocked.candidate_id})
        """
    )

    result = pytester.runpytest("-p", "no:cacheprovider")

    result.assert_outcomes(passed=1, failed=1)
    assert (
        f"evalgate gate blocked candidate {blocked.candidate_id} (decision {blocked.id}:"
        in result.stdout.str()
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "no such file"), (b"", "has no evalgate schema")],
    ids=["missing-file", "empty-database"],
)
def test_a_database_without_evalgate_fails_the_fixture_with_what_to_do(
    pytester: pytest.Pytester, tmp_path: Path, content: bytes | None, message: str
) -> None:
    path = tmp_path / "absent" / "evalgate.db"
    if content is not None:
        path.parent.mkdir()
        path.write_bytes(content)
    pytester.makepyfile("def test_gate(evalgate_gate):\n    pass\n")

    result = pytester.runpytest("--evalgate-database-url", f"sqlite:///{path}", "-p", "no:cacheprovider")

    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"*evalgate database sqlite:///{path}*{message}*"])
    assert path.exists() == (content is not None)


def test_assert_candidate_passes_takes_a_database_url(
    store: DatasetStore, database_url: str, tmp_path: Path
) -> None:
    passing, blocked = _decisions(store, tmp_path)

    assert assert_candidate_passes(database_url, passing.candidate_id, POLICY).verdict == "pass"
    with pytest.raises(GateBlockedError, match=rf"blocked candidate {blocked.candidate_id} "):
        assert_candidate_passes(database_url, blocked.candidate_id, POLICY)


def _two_checks(inconclusive: str) -> GatePolicy:
    return GatePolicy(
        checks=(Check("quality", "target", margin=0.05), Check("quality", "ood", margin=0.05)),
        inconclusive=inconclusive,  # type: ignore[arg-type]
        resamples=500,
    )


@pytest.mark.parametrize("inconclusive", ["block", "pass"])
def test_decisive_checks_follow_the_policy_on_inconclusive(inconclusive: str) -> None:
    """A fresh ``Decision`` works too; an inconclusive check is decisive unless the policy lets it pass."""
    rng = np.random.default_rng(0)
    base_target, base_ood = rng.uniform(0.4, 0.9, 80), rng.uniform(0.2, 0.8, 4)
    table = {("quality", "target"): base_target, ("quality", "ood"): base_ood}
    moved = {("quality", "target"): base_target - 0.3, ("quality", "ood"): base_ood + rng.normal(0, 0.2, 4)}

    def scores(values: dict[tuple[str, str], np.ndarray]) -> ScoreTable:
        rows = {
            key: {f"r{i}": (float(v), bool(v >= 0.5)) for i, v in enumerate(vs)} for key, vs in values.items()
        }
        return ScoreTable("d" * 64, rows, {"quality": "1"})

    decision = decide(_two_checks(inconclusive), scores(moved), scores(table), {"quality": True})

    verdicts = {check.check: check.verdict for check in decision.checks}
    assert verdicts == {"quality/target": "regress", "quality/ood": "inconclusive"}
    expected = ["quality/target", "quality/ood"] if inconclusive == "block" else ["quality/target"]
    assert [check["check"] for check in blocking_checks(decision)] == expected
    with pytest.raises(GateBlockedError, match=r"blocked the candidate \(policy default ") as raised:
        assert_passes(decision)
    assert ("quality/ood" in str(raised.value).split("not decisive:")[0]) == (inconclusive == "block")


def test_the_plugin_module_loads_no_model_library() -> None:
    """pytest imports the plugin in every run: it must stay light (no torch, transformers, peft)."""
    heavy = ("torch", "transformers", "peft")
    script = (
        f"import json, sys, evalgate.testing; print(json.dumps([m for m in {heavy!r} if m in sys.modules]))"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)

    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
