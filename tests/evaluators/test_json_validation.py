import json

from evaluators.base import ScoredRow
from evaluators.json_validation import JSONValidation

SCHEMA = json.dumps(
    {
        "type": "object",
        "properties": {"name": {"type": "string"}, "quantity": {"type": "integer", "minimum": 1}},
        "required": ["name", "quantity"],
        "additionalProperties": False,
    }
)


def check(answer: str, schema: str | None = SCHEMA):
    [result] = JSONValidation().score([ScoredRow("r", "q", answer, json_schema=schema)])
    return result


def test_valid_json_matching_the_schema_scores_one():
    assert check('{"name": "Ana", "quantity": 2}').score == 1.0


def test_fenced_json_is_accepted():
    assert check('```json\n{"name": "Ana", "quantity": 2}\n```').passed is True


def test_text_around_the_json_fails_to_parse():
    result = check('Here it is: {"name": "Ana", "quantity": 2}')
    assert result.score == 0.0 and result.detail["failed"] == "parse"


def test_schema_failure_reports_path_rule_and_message():
    result = check('{"name": "Ana", "quantity": 0}')
    assert result.score == 0.0
    assert result.detail["failed"] == "schema"
    assert result.detail["path"] == "$.quantity"
    assert result.detail["rule"] == "minimum"
    assert "minimum" in result.detail["message"]


def test_missing_required_field_names_the_field():
    result = check('{"name": "Ana"}')
    assert result.detail["rule"] == "required" and "quantity" in result.detail["message"]


def test_rows_without_a_schema_are_not_applicable():
    assert check('{"a": 1}', schema=None).score is None
