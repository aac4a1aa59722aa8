"""Folders of the source checkout that evalgate reads at run time."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
MIGRATIONS_DIR = REPO_ROOT / "migrations"
BUNDLED_SUITE_DIR = REPO_ROOT / "datasets" / "suite"
BUNDLED_SUITE_NAME = "evalgate-suite"
MAIN_SWEEP_CONFIG = REPO_ROOT / "examples" / "sweep.yaml"
MAIN_JOB_CONFIG = REPO_ROOT / "examples" / "ci.yaml"
"""The main job: the weekly CI job's config, run by ``evalgate demo`` on the bundled suite."""
