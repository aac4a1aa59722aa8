"""The published JSON Schemas of the config files (docs/schemas/): up to date, reproducible, and true to
the validation (the examples pass, an unknown key fails)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from evalgate.ci.schemas import CONFIG_FILES, config_schemas, main
from evalgate.core.paths import REPO_ROOT

PUBLISHED = REPO_ROOT / "docs" / "schemas"
EXAMPLES = {"sweep": "sweep.yaml", "policy": "policy.yaml", "ci": "ci.yaml"}


def test_the_committed_schemas_are_what_the_configs_generate(tmp_path: Path) -> None:
    main([str(tmp_path)])

    for stem in CONFIG_FILES:
        name = f"{stem}.schema.json"
        assert (tmp_path / name).read_bytes() == (PUBLISHED / name).read_bytes(), (
            f"docs/schemas/{name} is stale: run python -m evalgate.ci.schemas docs/schemas"
        )


def test_generating_twice_gives_the_same_bytes(tmp_path: Path) -> None:
    main([str(tmp_path / "a")])
    main([str(tmp_path / "b")])

    for stem in CONFIG_FILES:
        name = f"{stem}.schema.json"
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def _validator(stem: str) -> jsonschema.Draft202012Validator:
    schema = config_schemas()[stem]
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("stem", list(EXAMPLES))
def test_the_examples_are_valid_under_their_schema(stem: str) -> None:
    example = yaml.safe_load((REPO_ROOT / "examples" / EXAMPLES[stem]).read_text())

    assert list(_validator(stem).iter_errors(example)) == []


@pytest.mark.parametrize(
    ("stem", "data", "path"),
    [
        ("sweep", {"dataset": "d", "lora": {"rank": 8}}, ["lora"]),
        ("policy", {"checks": [{"evaluator": "e", "cohort": "c", "tolerance": 1}]}, ["checks", 0]),
        ("ci", {"dataset": "d@v1", "sweep": "s.yaml", "policy": "p.yaml", "promot": True}, []),
    ],
)
def test_an_unknown_key_is_invalid_under_the_schema(stem: str, data: dict[str, Any], path: list[Any]) -> None:
    (error,) = _validator(stem).iter_errors(data)

    assert error.validator == "additionalProperties" and list(error.absolute_path) == path


def test_a_ci_job_may_inline_a_sweep_without_its_dataset() -> None:
    job = {"dataset": "suite@v1", "sweep": {"learning_rates": [1.0e-3]}, "policy": "policy.yaml"}

    assert list(_validator("ci").iter_errors(job)) == []
    assert [e.validator for e in _validator("ci").iter_errors({**job, "dataset": "suite"})] == ["pattern"]
