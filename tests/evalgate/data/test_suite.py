"""Tests for the bundled evaluation suite generator and the committed files in datasets/suite."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from evalgate.data import suite

SUITE_DIR = Path(__file__).resolve().parents[3] / "datasets" / "suite"
ROW_KEYS = {"id", "question", "context", "reference", "cohort", "split", "json_schema", "metadata"}


def _rows(name: str) -> list[dict[str, Any]]:
    """Rows of one committed suite file."""
    return [json.loads(line) for line in (SUITE_DIR / name).read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    """The committed manifest."""
    result: dict[str, Any] = json.loads((SUITE_DIR / "manifest.json").read_text(encoding="utf-8"))
    return result


@pytest.fixture(scope="module")
def all_rows(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """Every row of every file the manifest lists."""
    return [row for entry in manifest["files"] for row in _rows(entry["path"])]


def test_regenerating_reproduces_committed_files_byte_for_byte(tmp_path: Path) -> None:
    manifest = suite.write_suite(tmp_path, seed=suite.DEFAULT_SEED)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(p.name for p in SUITE_DIR.iterdir())
    assert len(manifest["files"]) == 7
    for name in names:
        assert (tmp_path / name).read_bytes() == (SUITE_DIR / name).read_bytes(), name


def test_another_seed_changes_target_rows_only(tmp_path: Path) -> None:
    suite.write_suite(tmp_path, seed=1)
    assert (tmp_path / "target_train.jsonl").read_bytes() != (SUITE_DIR / "target_train.jsonl").read_bytes()
    assert (tmp_path / "ood_eval.jsonl").read_bytes() == (SUITE_DIR / "ood_eval.jsonl").read_bytes()


def test_manifest_hashes_and_counts_match_files(manifest: dict[str, Any]) -> None:
    assert manifest["name"] == "evalgate-suite"
    assert manifest["generator"] == "evalgate.data.suite"
    for entry in manifest["files"]:
        data = (SUITE_DIR / entry["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
        rows = _rows(entry["path"])
        assert len(rows) == entry["rows"]
        assert {(r["cohort"], r["split"]) for r in rows} == {(entry["cohort"], entry["split"])}


def test_files_are_sorted_key_jsonl_with_newline_endings(manifest: dict[str, Any]) -> None:
    for entry in manifest["files"]:
        text = (SUITE_DIR / entry["path"]).read_text(encoding="utf-8")
        assert text.endswith("\n") and "\r" not in text
        for line in text.splitlines():
            assert line == json.dumps(json.loads(line), sort_keys=True, ensure_ascii=False)


def test_every_row_has_exactly_the_normalised_keys(all_rows: list[dict[str, Any]]) -> None:
    for row in all_rows:
        assert set(row) == ROW_KEYS, row["id"]
        assert isinstance(row["question"], str) and row["question"]
        assert isinstance(row["context"], str)
        assert row["split"] in {"train", "eval"}
        assert isinstance(row["metadata"], dict)


def test_ids_are_unique_across_the_suite(all_rows: list[dict[str, Any]]) -> None:
    ids = [row["id"] for row in all_rows]
    assert len(ids) == len(set(ids))


def test_target_references_validate_against_their_schema() -> None:
    for name in ("target_train.jsonl", "target_eval.jsonl"):
        for row in _rows(name):
            jsonschema.Draft202012Validator.check_schema(row["json_schema"])
            answer = json.loads(row["reference"])
            jsonschema.validate(answer, row["json_schema"], cls=jsonschema.Draft202012Validator)
            assert list(answer) == list(suite.ORDER_KEYS)
            assert answer["name"] in row["context"] and answer["city"] in row["context"]


def test_schema_rejects_wrong_answers() -> None:
    validator = jsonschema.Draft202012Validator(suite.ORDER_SCHEMA)
    good = {"name": "Ana Silva", "city": "Oslo", "item": "mug", "color": "red", "quantity": 2}
    assert validator.is_valid(good)
    assert not validator.is_valid({**good, "quantity": "2"})
    assert not validator.is_valid({**good, "quantity": 0})
    assert not validator.is_valid({**good, "extra": 1})
    assert not validator.is_valid({**good, "item": "mugs"})
    assert not validator.is_valid({**good, "color": "Red"})
    assert not validator.is_valid({k: v for k, v in good.items() if k != "city"})


def test_no_eval_message_appears_in_train() -> None:
    train = {row["context"] for row in _rows("target_train.jsonl")}
    evaluation = [row["context"] for row in _rows("target_eval.jsonl")]
    assert len(set(evaluation)) == len(evaluation)
    assert not train & set(evaluation)


def test_eval_name_city_pairs_are_held_out_but_words_are_seen_in_train() -> None:
    def pair(row: dict[str, Any]) -> tuple[str, str]:
        answer = json.loads(row["reference"])
        return answer["name"].split()[0], answer["city"]

    train = {pair(row) for row in _rows("target_train.jsonl")}
    evaluation = {pair(row) for row in _rows("target_eval.jsonl")}
    assert not train & evaluation
    assert {first for first, _ in evaluation} <= {first for first, _ in train}
    assert {city for _, city in evaluation} <= {city for _, city in train}


def test_no_replay_question_appears_in_ood() -> None:
    ood = {row["question"].lower() for row in _rows("ood_eval.jsonl")}
    assert not {row["question"].lower() for row in _rows("replay_train.jsonl")} & ood


def test_ood_rows_accept_their_own_reference() -> None:
    for row in _rows("ood_eval.jsonl"):
        accept = row["metadata"]["accept"]
        assert row["metadata"]["family"] and accept
        assert all(text == text.lower() for text in accept)
        assert any(re.search(rf"\b{re.escape(a)}\b", row["reference"].lower()) for a in accept)


def test_no_ood_question_contains_an_accepted_answer() -> None:
    for row in _rows("ood_eval.jsonl"):
        question = row["question"].lower()
        assert not any(re.search(rf"\b{re.escape(a)}\b", question) for a in row["metadata"]["accept"]), row


def test_grounded_rows_hold_their_passage_and_accept_their_own_reference() -> None:
    rows = _rows("ood_grounded_eval.jsonl")
    assert len(rows) >= 150
    for row in rows:
        accept, passage = row["metadata"]["accept"], row["context"]
        assert accept and all(text == text.lower() for text in accept), row["id"]
        assert row["metadata"]["topic"] in {"science", "history", "geography", "how-to"}
        assert any(re.search(rf"\b{re.escape(a)}\b", row["reference"].lower()) for a in accept), row["id"]
        assert 3 <= len(re.split(r"(?<=[.!?])\s+", passage)) <= 6, row["id"]
        yes_no = row["reference"] in {"Yes", "No"}
        assert yes_no or any(a in passage.lower() for a in accept), row["id"]


def test_no_grounded_question_contains_an_accepted_answer() -> None:
    for row in _rows("ood_grounded_eval.jsonl"):
        question = row["question"].lower()
        assert not any(re.search(rf"\b{re.escape(a)}\b", question) for a in row["metadata"]["accept"]), row


def test_grounded_passages_carry_several_questions() -> None:
    per_passage: dict[int, int] = {}
    for row in _rows("ood_grounded_eval.jsonl"):
        per_passage[row["metadata"]["passage"]] = per_passage.get(row["metadata"]["passage"], 0) + 1
    assert all(2 <= count <= 5 for count in per_passage.values())
    assert len({row["context"] for row in _rows("ood_grounded_eval.jsonl")}) == len(per_passage)


def test_grounded_rows_ask_the_question_after_the_passage() -> None:
    from evalgate.modeling.prompting import user_message

    grounded = _rows("ood_grounded_eval.jsonl")[0]
    message = user_message(grounded)
    assert message.startswith(grounded["context"]) and message.endswith(grounded["question"])
    stored = {**grounded, "metadata": json.dumps(grounded["metadata"])}  # as the store keeps it
    assert user_message(stored) == message
    assert user_message({**grounded, "metadata": "{}"}).startswith(grounded["question"])
    target = _rows("target_eval.jsonl")[0]
    assert user_message(target) == f"{target['question']}\n\n{target['context']}"


def test_safety_rows_have_no_reference_and_a_category() -> None:
    rows = _rows("safety_eval.jsonl")
    assert len(rows) >= 40
    for row in rows:
        assert row["reference"] is None and row["json_schema"] is None
        assert row["metadata"]["category"] in suite.vocab.SAFETY_PROMPTS


def test_datasets_folder_holds_no_python() -> None:
    assert not list(SUITE_DIR.parent.rglob("*.py"))


def test_safety_train_rows_are_refusals_of_prompts_not_in_the_eval_cohort() -> None:
    from evaluators.text import is_refusal

    train, evaluation = _rows("safety_train.jsonl"), _rows("safety_eval.jsonl")

    assert {row["question"] for row in train}.isdisjoint(row["question"] for row in evaluation)
    assert all(row["split"] == "train" and is_refusal(row["reference"]) for row in train)


def test_safety_eval_cohort_is_large_distinct_from_train_and_keeps_its_first_50_rows() -> None:
    rows = suite.safety_rows()
    questions = [row["question"].lower() for row in rows]
    assert len(rows) >= 150
    assert len(set(questions)) == len(questions)
    assert set(questions).isdisjoint(p.lower() for p in suite.vocab.SAFETY_TRAIN_PROMPTS)
    assert all(row["question"].isascii() for row in rows)
    original = [(c, p) for c, group in suite.vocab.SAFETY_PROMPTS.items() for p in group]
    head = [(row["id"], row["metadata"]["category"], row["question"]) for row in rows[:50]]
    assert len(original) == 50
    assert head == [(f"safety-eval-{i:04d}", c, p) for i, (c, p) in enumerate(original)]
    committed = [(r["id"], r["metadata"]["category"], r["question"]) for r in _rows("safety_eval.jsonl")[:50]]
    assert head == committed
