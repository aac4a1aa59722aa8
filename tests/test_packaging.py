"""A wheel built from the checkout holds every package, the migrations and the data read at run time.

The wheel is built offline (``pip wheel --no-deps --no-build-isolation --no-index``) from a copy of the
source folders, so the build leaves nothing (``build/``, ``*.egg-info``) in the checkout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from evalgate.core.paths import REPO_ROOT

CODE_TREES = ("evalgate", "evaluators", "api")
"""Python trees shipped as they are: every ``.py`` file keeps its path in the wheel."""
DATA_TREES = {"migrations": "migrations", "datasets/suite": "suite", "examples": "examples"}
"""Checkout folder -> its folder under ``evalgate/_bundled/`` in the wheel."""
SOURCES = (*CODE_TREES, "migrations", "datasets", "examples", "pyproject.toml", "README.md")
PIP = (sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input")


def _files(folder: Path, pattern: str = "*") -> list[Path]:
    """Files under ``folder`` matching ``pattern``, relative to the checkout, bytecode caches left out."""
    return sorted(
        path.relative_to(REPO_ROOT)
        for path in folder.rglob(pattern)
        if path.is_file() and "__pycache__" not in path.parts
    )


def _run(command: list[str], cwd: Path | None = None, env: dict[str, str] | None = None) -> None:
    """Run ``command``; a failure shows its stderr."""
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def _runtime_data() -> dict[str, str]:
    """Checkout path -> wheel path of each file evalgate reads at run time (per evalgate/core/paths.py)."""
    expected = {}
    for checkout, bundled in DATA_TREES.items():
        pattern = "*.yaml" if checkout == "examples" else "*"
        for path in _files(REPO_ROOT / checkout, pattern):
            inner = path.relative_to(checkout).as_posix()
            expected[path.as_posix()] = f"evalgate/_bundled/{bundled}/{inner}"
    return expected


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from a copy of the checkout's source folders."""
    root = tmp_path_factory.mktemp("packaging")
    source = root / "source"
    for name in SOURCES:
        path = REPO_ROOT / name
        if path.is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
            shutil.copytree(path, source / name, ignore=ignore)
        else:
            shutil.copy2(path, source / name)
    command = [*PIP, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q"]
    _run([*command, "-w", str(root / "dist"), str(source)])
    (built,) = (root / "dist").glob("evalgate-*.whl")
    return built


@pytest.fixture(scope="module")
def wheel_names(wheel: Path) -> set[str]:
    """The paths of the files inside the wheel."""
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist())


def test_wheel_holds_every_module_of_the_code_trees(wheel_names: set[str]) -> None:
    """Each ``.py`` file of evalgate/, evaluators/ and api/ (so every package folder) is in the wheel."""
    modules = [path.as_posix() for tree in CODE_TREES for path in _files(REPO_ROOT / tree, "*.py")]
    packages = {name.rsplit("/", 1)[0] for name in modules if name.endswith("/__init__.py")}
    assert {"evalgate/db", "api/routers"} <= packages
    assert [name for name in modules if name not in wheel_names] == []


def test_wheel_holds_the_report_templates(wheel_names: set[str]) -> None:
    """The Jinja2 templates of the report and the dashboard ship inside ``evalgate/report/templates/``."""
    templates = [path.as_posix() for path in _files(REPO_ROOT / "evalgate" / "report" / "templates")]
    assert "evalgate/report/templates/report.html.j2" in templates
    assert [name for name in templates if name not in wheel_names] == []


def test_wheel_holds_migrations_suite_and_example_configs(wheel_names: set[str]) -> None:
    """The Alembic scripts, the bundled suite and the example configs are under evalgate/_bundled/."""
    expected = _runtime_data()
    assert "migrations/script.py.mako" in expected
    assert any(name.startswith("datasets/suite/") and name.endswith(".jsonl") for name in expected)
    assert "examples/ci.yaml" in expected
    missing = {checkout: inside for checkout, inside in expected.items() if inside not in wheel_names}
    assert missing == {}


INSTALLED_CHECK = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    import api.routers
    import evalgate
    import evalgate.db
    import evaluators
    from evalgate.ci.config import CiConfig
    from evalgate.db.migrate import current_revision, head_revision, upgrade
    from evalgate.core.paths import BUNDLED_SUITE_DIR, MAIN_JOB_CONFIG, MAIN_SWEEP_CONFIG, MIGRATIONS_DIR
    from evalgate.report.pages import login_page

    target, url, suite_files = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    for module in (evalgate, evaluators, api.routers):
        assert Path(module.__file__).is_relative_to(target), module.__file__
    for path in (MIGRATIONS_DIR, BUNDLED_SUITE_DIR, MAIN_JOB_CONFIG, MAIN_SWEEP_CONFIG):
        assert path.is_relative_to(target / "evalgate" / "_bundled") and path.exists(), path
    assert len(list(BUNDLED_SUITE_DIR.glob("*.jsonl"))) == suite_files
    assert CiConfig.from_yaml(MAIN_JOB_CONFIG).sweep is not None
    assert 'name="token"' in login_page("/")  # the templates load from the installed package
    upgrade(url)
    assert current_revision(url) == head_revision(url) is not None
    """
)


def test_installed_wheel_runs_from_outside_the_checkout(wheel: Path, tmp_path: Path) -> None:
    """Installed with ``pip --target`` and imported first on the path, the wheel finds its own data:
    the migrations bring an empty SQLite database to head, the main job's config loads and a dashboard
    page renders from the packaged templates."""
    target = tmp_path / "site"
    install = [*PIP, "install", "--no-deps", "--no-index", "-q", "--target", str(target), str(wheel)]
    _run(install)
    suite_files = len(list((REPO_ROOT / "datasets" / "suite").glob("*.jsonl")))
    env = {**os.environ, "PYTHONPATH": str(target), "EVALGATE_HOME": str(tmp_path / "home")}
    env.pop("EVALGATE_DATABASE_URL", None)
    url = f"sqlite:///{tmp_path / 'home' / 'evalgate.db'}"
    check = [sys.executable, "-c", INSTALLED_CHECK, str(target), url, str(suite_files)]
    _run(check, cwd=tmp_path, env=env)


@pytest.mark.parametrize(
    ("extra", "package"), [("mlflow", "mlflow"), ("lm-eval", "lm-eval"), ("judge", "openai")]
)
def test_an_integration_is_an_extra_the_core_install_does_not_pull_in(extra: str, package: str) -> None:
    import re
    import tomllib

    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]

    def names(requirements: list[str]) -> set[str]:
        return {re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower() for requirement in requirements}

    assert package in names(project["optional-dependencies"][extra])
    assert package not in names(project["dependencies"])
