"""The tracking switch and its names, without a server: tracking is off without a URI, a malformed
setting is a warning naming it, registered model names come from the base model, passwords are masked,
and the light processes (API, CLI entry, report, client, the CI job module) do not import mlflow."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from evalgate.core.settings import Settings
from evalgate.tracking.target import (
    MlflowTarget,
    TrackingConfigError,
    masked_uri,
    registered_model_name,
    sync_if_configured,
)

LIGHT_MODULES = (
    "api.main",
    "evalgate.cli.main",
    "evalgate.report.sweep",
    "evalgate.client",
    "evalgate.ci.local",
    "evalgate.tracking.target",
)


def test_tracking_is_off_without_a_uri(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings(home=tmp_path, database_url=f"sqlite:///{tmp_path / 'none.db'}")

    with caplog.at_level(logging.DEBUG, logger="evalgate.tracking"):
        report = sync_if_configured(settings, sweep_id=1)

    assert report is None and MlflowTarget.from_settings(settings) is None
    assert [r for r in caplog.records if r.name == "evalgate.tracking"] == []
    assert not (tmp_path / "none.db").exists()  # not even the database was opened


def test_the_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("EVALGATE_MLFLOW_TRACKING_URI", "http://mlflow.internal:5000")
    monkeypatch.setenv("EVALGATE_MLFLOW_EXPERIMENT", "weekly")
    monkeypatch.setenv("EVALGATE_MLFLOW_MODEL_NAME", "orders-json")
    monkeypatch.setenv("EVALGATE_MLFLOW_ALIAS", "production")

    target = MlflowTarget.from_settings(Settings(home=tmp_path))

    assert target == MlflowTarget("http://mlflow.internal:5000", "weekly", "orders-json", "production")
    assert target.registered_model("any/base") == "orders-json"


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"mlflow_alias": "latest"}, "EVALGATE_MLFLOW_ALIAS"),
        ({"mlflow_alias": "v3"}, "EVALGATE_MLFLOW_ALIAS"),
        ({"mlflow_alias": "has space"}, "EVALGATE_MLFLOW_ALIAS"),
        ({"mlflow_experiment": "  "}, "EVALGATE_MLFLOW_EXPERIMENT"),
        ({"mlflow_model_name": ""}, "EVALGATE_MLFLOW_MODEL_NAME"),
    ],
)
def test_a_malformed_setting_is_a_warning_naming_it(
    changes: dict[str, str], named: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(home=tmp_path, mlflow_tracking_uri="http://127.0.0.1:9", **changes)  # type: ignore[arg-type]

    with caplog.at_level(logging.WARNING, logger="evalgate.tracking"):
        report = sync_if_configured(settings, sweep_id=1)

    assert report is None
    (warning,) = [r for r in caplog.records if r.name == "evalgate.tracking"]
    assert warning.getMessage().startswith(f"MLflow tracking skipped: {named}: ")
    with pytest.raises(TrackingConfigError, match=named):
        MlflowTarget.from_settings(settings)


@pytest.mark.parametrize(
    ("base_model", "name"),
    [
        ("HuggingFaceTB/SmolLM2-135M", "HuggingFaceTB-SmolLM2-135M-lora"),
        ("smollm2-135m-instruct", "smollm2-135m-instruct-lora"),
        ("/tmp/pytest-1/tiny/tiny-lm", "tmp-pytest-1-tiny-tiny-lm-lora"),
        ("///", "model-lora"),
    ],
)
def test_the_registered_model_is_named_after_the_base_model(base_model: str, name: str) -> None:
    assert registered_model_name(base_model) == name
    assert MlflowTarget("http://x").registered_model(base_model) == name


def test_a_password_in_the_uri_is_masked() -> None:
    assert masked_uri("https://ci:s3cret@mlflow.example.com/path") == "https://ci:***@mlflow.example.com/path"
    assert masked_uri("http://127.0.0.1:5000") == "http://127.0.0.1:5000"
    assert MlflowTarget("https://u:p@h").display_uri == "https://u:***@h"


def test_without_mlflow_installed_a_set_uri_is_a_warning_naming_the_extra() -> None:
    script = (
        "import sys; sys.modules['mlflow'] = None\n"  # what an environment without mlflow imports
        "from evalgate.core.settings import Settings\n"
        "from evalgate.tracking.target import sync_if_configured\n"
        "settings = Settings(mlflow_tracking_uri='http://127.0.0.1:9', database_url='sqlite://')\n"
        "print(sync_if_configured(settings, sweep_id=1))"
    )

    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)

    assert done.stdout.strip() == "None"
    assert (
        "MLflow tracking skipped: EVALGATE_MLFLOW_TRACKING_URI is set but mlflow cannot be imported"
        in done.stderr
    )
    assert "pip install 'evalgate[mlflow]'" in done.stderr


def test_the_light_modules_do_not_import_mlflow() -> None:
    imports = ", ".join(LIGHT_MODULES)
    script = f"import json, sys, {imports}; print(json.dumps('mlflow' in sys.modules))"

    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)

    assert json.loads(done.stdout.strip().splitlines()[-1]) is False
