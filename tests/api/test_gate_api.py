"""POST /gate/decide, decisions and promotion, on SQLite and PostgreSQL."""

from __future__ import annotations

import copy
from concurrent.futures import ThreadPoolExecutor

from fastapi.testclient import TestClient

from tests.api.conftest import POLICY, GateData, bearer


def decide(api: TestClient, token: str, candidate_id: int, **extra: object):  # type: ignore[no-untyped-def]
    return api.post(
        "/gate/decide", json={"candidate_id": candidate_id, "policy": POLICY, **extra}, headers=bearer(token)
    )


def test_a_candidate_that_learns_without_forgetting_passes_with_evidence(
    api: TestClient, tokens: dict[str, str], gate_data: GateData
) -> None:
    response = decide(api, tokens["write"], gate_data.good)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["verdict"] == "pass" and body["reused"] is False
    assert body["baseline_run_id"] == gate_data.base_run_v1 and body["decided_by"] == "write-token"
    evidence = body["evidence"]
    assert evidence["policy_sha256"] == body["policy_hash"] and evidence["seed"] == 0
    target = next(check for check in evidence["checks"] if check["check"] == "quality/target")
    assert target["n"] == 300 and target["ci_95"][0] > 0.3 and target["verdict"] == "pass"


def test_deciding_again_returns_the_stored_decision(
    api: TestClient, tokens: dict[str, str], gate_data: GateData
) -> None:
    first = decide(api, tokens["write"], gate_data.good).json()
    again = decide(api, tokens["write"], gate_data.good).json()
    listed = api.get(f"/gate/decisions?candidate_id={gate_data.good}", headers=bearer(tokens["read"])).json()

    assert again["id"] == first["id"] and again["reused"] is True
    assert [d["id"] for d in listed] == [first["id"]]
    assert api.get(f"/gate/decisions/{first['id']}", headers=bearer(tokens["read"])).json() == {
        **first,
        "reused": False,
    }


def test_identical_decisions_requested_at_once_store_one_decision(
    api: TestClient, tokens: dict[str, str], gate_data: GateData
) -> None:
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: decide(api, tokens["write"], gate_data.good), range(16)))

    assert [answer.status_code for answer in answers] == [200] * 16
    assert len({answer.json()["id"] for answer in answers}) == 1
    listed = api.get("/gate/decisions", headers=bearer(tokens["read"])).json()
    assert len(listed) == 1


def test_forgetting_blocks_and_promotion_is_refused_with_409(
    api: TestClient, tokens: dict[str, str], gate_data: GateData
) -> None:
    body = decide(api, tokens["write"], gate_data.forgets).json()
    promoted = api.post(f"/gate/candidates/{gate_data.forgets}/promote", headers=bearer(tokens["write"]))

    assert body["verdict"] == "block"
    ood = next(check for check in body["evidence"]["checks"] if check["check"] == "quality/ood")
    assert ood["verdict"] == "regress"
    assert promoted.status_code == 409 and "quality/ood" in promoted.json()["detail"]


def test_a_promoted_candidate_becomes_the_baseline(
    api: TestClient, tokens: dict[str, str], gate_data: GateData
) -> None:
    decide(api, tokens["write"], gate_data.good)
    promoted = api.post(f"/gate/candidates/{gate_data.good}/promote", headers=bearer(tokens["write"]))
    good_run = decide(api, tokens["write"], gate_data.good).json()["candidate_run_id"]

    against_promoted = decide(api, tokens["write"], gate_data.forgets).json()
    against_base = decide(api, tokens["write"], gate_data.forgets, baseline="base").json()

    assert promoted.status_code == 200 and promoted.json()["promoted_by"] == "write-token"
    assert against_promoted["baseline_run_id"] == good_run
    assert against_base["baseline_run_id"] == gate_data.base_run_v1
    baseline = api.get("/gate/baseline?base_model=m", headers=bearer(tokens["read"])).json()
    assert baseline["candidate_id"] == gate_data.good


def test_the_baseline_refusals_and_a_promoted_candidate_against_itself(
    api: TestClient, tokens: dict[str, str], gate_data: GateData
) -> None:
    write = tokens["write"]
    nobody_promoted = decide(api, write, gate_data.good, baseline="promoted")
    decide(api, write, gate_data.good)
    api.post(f"/gate/candidates/{gate_data.good}/promote", headers=bearer(write))
    itself = decide(api, write, gate_data.good).json()  # the promoted candidate: against the base run
    elsewhere = decide(api, write, gate_data.other_version)  # promoted one has no run on suite@v2

    assert nobody_promoted.status_code == 409
    assert "no other candidate of m has been promoted" in nobody_promoted.json()["detail"]
    assert itself["baseline_run_id"] == gate_data.base_run_v1
    assert elsewhere.status_code == 409 and "evaluate it there first" in elsewhere.json()["detail"]


def test_comparing_across_dataset_versions_is_409(
    api: TestClient, tokens: dict[str, str], gate_data: GateData
) -> None:
    response = decide(api, tokens["write"], gate_data.other_version, baseline=gate_data.base_run_v1)

    assert response.status_code == 409
    assert "different dataset versions" in response.json()["detail"]


def test_unknown_ids_are_404(api: TestClient, tokens: dict[str, str], gate_data: GateData) -> None:
    read = bearer(tokens["read"])

    assert decide(api, tokens["write"], 9999).status_code == 404
    assert api.get("/gate/decisions/9999", headers=read).status_code == 404
    assert api.post("/gate/candidates/9999/promote", headers=bearer(tokens["write"])).status_code == 404
    assert decide(api, tokens["write"], gate_data.good, baseline=9999).status_code == 404


def test_an_invalid_policy_is_422_with_the_path_of_the_bad_field(
    api: TestClient, tokens: dict[str, str], gate_data: GateData
) -> None:
    policy = copy.deepcopy(POLICY)
    policy["checks"][1]["margin"] = -1
    response = api.post(
        "/gate/decide",
        json={"candidate_id": gate_data.good, "policy": policy},
        headers=bearer(tokens["write"]),
    )

    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "policy", "checks", 1, "margin"]
    assert error["type"] == "greater_than_equal" and error["ctx"] == {"ge": 0.0}


def test_malformed_json_and_wrong_fields_are_422_naming_them(api: TestClient, tokens: dict[str, str]) -> None:
    headers = {**bearer(tokens["write"]), "Content-Type": "application/json"}
    broken = api.post("/gate/decide", content=b'{"candidate_id": 1, "policy": ', headers=headers)
    wrong_type = api.post("/gate/decide", json={"candidate_id": "seven", "policy": {}}, headers=headers)
    unknown = api.post(
        "/gate/decide", json={"candidate_id": 1, "policy": POLICY, "polcy": {}}, headers=headers
    )

    assert broken.status_code == 422 and broken.json()["detail"][0]["type"] == "json_invalid"
    assert wrong_type.status_code == 422 and wrong_type.json()["detail"][0]["loc"] == ["body", "candidate_id"]
    assert unknown.status_code == 422 and unknown.json()["detail"][0]["loc"] == ["body", "polcy"]
