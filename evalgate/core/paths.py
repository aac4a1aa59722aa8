"""Folders that evalgate reads at run time, in a source checkout and in an installed wheel.

A source checkout (``pip install -e .``) reads them where they live in the repository: ``migrations/``,
``datasets/suite/`` and ``examples/``. A wheel carries them inside the ``evalgate`` package, under
``evalgate/_bundled/`` (mapped there by ``[tool.setuptools]`` in pyproject.toml), so each folder is
looked up there first and in the repository second.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]
REPO_ROOT = PACKAGE_DIR.parent
"""The source checkout's root; in an installed wheel this is ``site-packages`` and holds no data."""
BUNDLED_DIR = PACKAGE_DIR / "_bundled"
"""Where a wheel puts the data folders (absent in a source checkout)."""


def data_dir(bundled_name: str, repo_relative: str) -> Path:
    """``BUNDLED_DIR / bundled_name`` when the wheel holds it, else ``REPO_ROOT / repo_relative``.

    The second is returned even when missing, so an error message names the checkout's path.
    """
    bundled = BUNDLED_DIR / bundled_name
    return bundled if bundled.is_dir() else REPO_ROOT / repo_relative


MIGRATIONS_DIR = data_dir("migrations", "migrations")
BUNDLED_SUITE_DIR = data_dir("suite", "datasets/suite")
BUNDLED_SUITE_NAME = "evalgate-suite"
EXAMPLES_DIR = data_dir("examples", "examples")
MAIN_SWEEP_CONFIG = EXAMPLES_DIR / "sweep.yaml"
MAIN_JOB_CONFIG = EXAMPLES_DIR / "ci.yaml"
"""The main job: the weekly CI job's config, run by ``evalgate demo`` on the bundled suite."""
