"""The HTML dashboard: login session, redirects, pages, and the JSON API left as it was."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import case, func, select

from evalgate.data.store import DatasetStore
from evalgate.db.models import Candidate, EvaluationRun, RowScore, Sweep
from evalgate.db.session import session_scope
from evalgate.service.api_tokens import create_token, revoke_token
from tests.api.conftest import bearer
from tests.support.sweep_data import SeededSweep, seed_weekly_sweep

HTML = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


@pytest.fixture
def weeks(store: DatasetStore, tmp_path: Path) -> tuple[SeededSweep, SeededSweep]:
    """Two weekly sweeps on orders-json (v1, v2); in week 2 lr=0.0001 regresses out of domain."""
    return seed_weekly_sweep(store, tmp_path, week=1), seed_weekly_sweep(store, tmp_path, week=2)


def login(api: TestClient, token: str, next_path: str = "/") -> None:
    """Post the login form; the client keeps the cookie."""
    response = api.post("/login", data={"token": token, "next": next_path}, follow_redirects=False)
    assert response.status_code == 303, response.text


def test_pages_redirect_to_login_and_back(api: TestClient, tokens: dict[str, str]) -> None:
    for path in ("/", "/sweeps/1", "/candidates/1/rows?evaluator=quality&cohort=ood", "/datasets/d/history"):
        response = api.get(path, headers=HTML, follow_redirects=False)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/login?next=%2F"), path
    form = api.get("/login?next=/sweeps/1")
    assert form.status_code == 200 and 'name="token"' in form.text and 'value="/sweeps/1"' in form.text

    answer = api.post("/login", data={"token": tokens["read"], "next": "/sweeps/1"}, follow_redirects=False)

    assert answer.status_code == 303 and answer.headers["location"] == "/sweeps/1"
    cookie = answer.headers["set-cookie"].lower()
    assert cookie.startswith("evalgate_session=") and "httponly" in cookie and "samesite=lax" in cookie
    assert tokens["read"].lower() not in cookie and "max-age=43200" in cookie
    assert "path=/" in cookie and "secure" not in cookie.replace("samesite", "")  # plain http in tests
    assert api.get("/", headers=HTML).status_code == 200


def test_login_refuses_bad_tokens_foreign_origins_and_open_redirects(
    api: TestClient, tokens: dict[str, str]
) -> None:
    wrong = api.post("/login", data={"token": "eg_wrong"}, follow_redirects=False)
    foreign = api.post(
        "/login",
        data={"token": tokens["read"]},
        headers={"Origin": "https://evil.example"},
        follow_redirects=False,
    )
    assert (
        wrong.status_code == 401
        and "Unknown or revoked token." in wrong.text
        and "set-cookie" not in wrong.headers
    )
    assert foreign.status_code == 403 and "set-cookie" not in foreign.headers
    for target in ("https://evil.example/x", "//evil.example", "/\\evil.example", "javascript:alert(1)"):
        answer = api.post("/login", data={"token": tokens["read"], "next": target}, follow_redirects=False)
        assert answer.headers["location"] == "/", target


def test_logout_clears_the_cookie_and_a_revoked_token_stops_working(
    api: TestClient, tokens: dict[str, str], store: DatasetStore
) -> None:
    login(api, tokens["read"])
    assert api.get("/", headers=HTML, follow_redirects=False).status_code == 200

    revoke_token(store.sessions, "read-token")
    assert api.get("/", headers=HTML, follow_redirects=False).status_code == 303

    login(api, tokens["write"])
    out = api.post("/logout", follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/login"
    cleared = out.headers["set-cookie"].lower()
    assert cleared.startswith('evalgate_session=""') and "max-age=0" in cleared
    assert api.get("/", headers=HTML, follow_redirects=False).status_code == 303


def test_the_json_api_ignores_the_cookie(
    api: TestClient, tokens: dict[str, str], weeks: tuple[SeededSweep, SeededSweep]
) -> None:
    sweep_id = weeks[0].sweep_id
    login(api, tokens["admin"])

    assert api.get("/sweeps").status_code == 401
    assert api.get(f"/sweeps/{sweep_id}").status_code == 401  # no text/html in Accept: the JSON route
    assert api.get("/tokens").status_code == 401
    assert api.post("/gate/decide", json={"candidate_id": 1, "policy": {}}).status_code == 401
    as_json = api.get(f"/sweeps/{sweep_id}", headers=bearer(tokens["read"]))
    assert as_json.status_code == 200 and len(as_json.json()["candidates"]) == 5
    assert api.get("/sweeps/999", headers=bearer(tokens["read"])).status_code == 404
    paths = api.get("/openapi.json", headers=bearer(tokens["read"])).json()["paths"]
    assert "/" not in paths and "/login" not in paths and "/sweeps/{sweep_id}" in paths


def test_pages_accept_the_bearer_header(api: TestClient, tokens: dict[str, str]) -> None:
    assert api.get("/", headers={**HTML, **bearer(tokens["read"])}).status_code == 200
    assert api.get("/", headers={**HTML, **bearer("eg_nope")}).status_code == 401


def test_index_lists_sweeps_and_datasets(
    api: TestClient, tokens: dict[str, str], weeks: tuple[SeededSweep, SeededSweep]
) -> None:
    login(api, tokens["read"])

    page = api.get("/", headers=HTML)

    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert f'<a href="/sweeps/{weeks[1].sweep_id}">{weeks[1].sweep_id} · weekly-2</a>' in page.text
    assert "<strong>lr=0.0001</strong>" in page.text and "<strong>lr=1e-05</strong>" in page.text
    assert '<a href="/datasets/orders-json/history">orders-json</a>' in page.text
    assert "<script" not in page.text and "read-token" in page.text


def test_sweep_page_is_the_report_with_links(
    api: TestClient, tokens: dict[str, str], weeks: tuple[SeededSweep, SeededSweep]
) -> None:
    week1 = weeks[0]
    login(api, tokens["read"])

    page = api.get(f"/sweeps/{week1.sweep_id}", headers=HTML)

    assert page.status_code == 200
    assert "Recommended: <strong>lr=0.0001</strong>" in page.text and '<svg class="chart"' in page.text
    forgets = week1.candidates["lr=0.001"]
    assert f'href="/candidates/{forgets}/rows?evaluator=answer_accuracy&amp;cohort=ood"' in page.text
    assert 'href="/datasets/orders-json/history"' in page.text
    missing = api.get("/sweeps/999", headers=HTML)
    assert missing.status_code == 404 and "sweep 999 not found" in missing.text


HALTED = "stopped early at rung 1 (step 8): validation loss 2.5000, not among the best 2 of 4 (<2.0>)"


def _add_stopped_candidate(store: DatasetStore, sweep_id: int) -> int:
    """A candidate of ``sweep_id`` that successive halving stopped at rung 1 (no evaluation run)."""
    hyperparameters = {"learning_rate": 3e-3, "scheduler": "cosine", "final_fraction": 0.1, "lora_r": 4}
    with session_scope(store.sessions) as session:
        candidate = Candidate(
            sweep_id=sweep_id, name="lr=0.003 cosine r=4", base_model="HuggingFaceTB/SmolLM2-135M",
            learning_rate=3e-3, hyperparameters=hyperparameters, status="stopped", diagnosis="healthy",
            training={"loss": [2.0, 1.8, 1.7], "halted": HALTED, "validation_loss": [[8, 2.5]]},
        )  # fmt: skip
        session.add(candidate)
        session.flush()
        return candidate.id


def test_sweep_page_and_json_show_hyperparameters_and_a_stopped_candidates_reason(
    api: TestClient, tokens: dict[str, str], weeks: tuple[SeededSweep, SeededSweep], store: DatasetStore
) -> None:
    week1 = weeks[0]
    stopped_id = _add_stopped_candidate(store, week1.sweep_id)
    login(api, tokens["read"])

    page = api.get(f"/sweeps/{week1.sweep_id}", headers=HTML).text
    as_json = api.get(f"/sweeps/{week1.sweep_id}", headers=bearer(tokens["read"])).json()

    section = page[page.index('<section id="candidates">') :].split("</section>")[0]
    row = section[section.index("<th>lr=0.003 cosine r=4</th>") :].split("</tr>")[0]
    escaped = HALTED.replace("<", "&lt;").replace(">", "&gt;")
    assert "<td>stopped early</td>" in row and f'<td class="small">{escaped}</td>' in row
    assert "<td>0.003</td><td>cosine</td><td>0.1</td><td>4</td>" in row
    assert "<th>learning_rate</th><th>scheduler</th><th>final_fraction</th><th>lora_r</th>" in section
    reason = page[page.index("<li><strong>lr=0.003 cosine r=4</strong>") :].split("</li>")[0]
    assert reason.endswith(f": not evaluated ({escaped})")
    by_name = {candidate["name"]: candidate for candidate in as_json["candidates"]}
    assert by_name["lr=0.003 cosine r=4"]["halted"] == HALTED and by_name["lr=0.0001"]["halted"] is None
    assert by_name["lr=0.003 cosine r=4"]["hyperparameters"]["lora_r"] == 4
    assert (
        by_name["lr=0.003 cosine r=4"]["id"] == stopped_id and by_name["lr=0.0001"]["hyperparameters"] == {}
    )


def test_worst_rows_drill_down(
    api: TestClient, tokens: dict[str, str], weeks: tuple[SeededSweep, SeededSweep]
) -> None:
    forgets = weeks[0].candidates["lr=0.001"]
    login(api, tokens["read"])

    page = api.get(f"/candidates/{forgets}/rows?evaluator=answer_accuracy&cohort=ood&limit=4", headers=HTML)
    default = api.get(f"/candidates/{forgets}/rows", headers=HTML)

    assert page.status_code == 200 and "lr=0.001: worst rows on answer_accuracy/ood" in page.text
    assert page.text.count("<tr><td>o") == 4 and "{&#34;answer&#34;: " in page.text
    assert "of 120 paired rows got worse" in page.text
    assert default.status_code == 200 and "worst rows on answer_accuracy/ood" in default.text
    assert api.get("/candidates/999/rows", headers=HTML).status_code == 404


def test_dataset_history_outlines_the_new_regression(
    api: TestClient, tokens: dict[str, str], weeks: tuple[SeededSweep, SeededSweep]
) -> None:
    login(api, tokens["read"])

    page = api.get("/datasets/orders-json/history", headers=HTML)

    assert page.status_code == 200 and "Decision history: orders-json" in page.text
    series = page.text.split("<h2>")
    regressed = next(part for part in series if part.startswith("HuggingFaceTB/SmolLM2-135M · lr=0.0001"))
    assert regressed.count('class="regress new-regression"') == 1 and "<strong>NEW</strong>" in regressed
    assert "orders-json@v1" in regressed and "orders-json@v2" in regressed
    assert api.get("/datasets/nope/history", headers=HTML).status_code == 404


def test_sweep_page_shows_each_cohorts_eval_fail_rate_next_to_the_baseline(
    api: TestClient, tokens: dict[str, str], weeks: tuple[SeededSweep, SeededSweep], store: DatasetStore
) -> None:
    week2 = weeks[1]  # lr=0.0001 regresses out of domain this week
    login(api, tokens["read"])
    with session_scope(store.sessions) as session:
        runs = {
            label: session.scalars(
                select(EvaluationRun.id).where(EvaluationRun.candidate_id == candidate_id)
            ).one()
            for label, candidate_id in week2.candidates.items()
            if label != "lr=0.01"
        }
        failed = {
            label: session.execute(
                select(func.avg(case((RowScore.passed.is_(False), 100.0), else_=0.0))).where(
                    RowScore.evaluation_run_id == run_id,
                    RowScore.evaluator == "answer_accuracy",
                    RowScore.cohort == "ood",
                )
            ).scalar_one()
            for label, run_id in {"baseline": week2.base_run_id, **runs}.items()
        }

    page = api.get(f"/sweeps/{week2.sweep_id}", headers=HTML)

    assert page.status_code == 200
    section = page.text[page.text.index('<section id="fail-rates">') :].split("</section>")[0]
    assert "<th>baseline</th><th>lr=1e-05</th><th>lr=0.0001</th>" in section
    line = section[section.index("<th>answer_accuracy/ood</th>") :].split("</tr>")[0]
    cells = [float(v) for v in re.findall(r">([0-9.]+)%", line)]
    assert cells == pytest.approx([round(failed[c], 1) for c in ("baseline", *runs)], abs=0.051)
    assert failed["lr=0.0001"] > failed["baseline"] + 5
    assert f'<td class="num regress">{failed["lr=0.0001"]:.1f}%' in line


def test_every_page_escapes_sweep_candidate_and_token_names(
    api: TestClient, store: DatasetStore, weeks: tuple[SeededSweep, SeededSweep]
) -> None:
    """Names stored as HTML (the store's name rules aside) come out as text on every page."""
    hostile = "<script>alert(1)</script>"
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt;"
    week1 = weeks[0]
    with session_scope(store.sessions) as session:
        sweep = session.get_one(Sweep, week1.sweep_id)
        sweep.name, sweep.base_model = hostile, hostile
        for candidate in session.scalars(select(Candidate).where(Candidate.sweep_id == week1.sweep_id)):
            candidate.name = f"{hostile} {candidate.name}"
    login(api, create_token(store.sessions, hostile, "read"))
    rows = f"/candidates/{week1.candidates['lr=0.001']}/rows?evaluator=answer_accuracy&cohort=ood"
    history = "/datasets/orders-json/history"
    paths = ("/", f"/sweeps/{week1.sweep_id}", rows, history, f"/login?next=/{hostile}")

    pages = {path: api.get(path, headers=HTML) for path in paths}

    for path, page in pages.items():
        assert page.status_code == 200, path
        assert "<script" not in page.text and escaped in page.text, path
    assert f"<h1>{escaped} lr=0.001: worst rows on answer_accuracy/ood</h1>" in pages[rows].text
    series = f"<h2>HuggingFaceTB/SmolLM2-135M · {escaped} lr=0.0001</h2>"
    assert series in pages[history].text
