"""Where and whether to mirror into MLflow, and the guarded entry point the sweep command and the CI job
call. MLflow itself is imported only when a tracking URI is set.

    EVALGATE_MLFLOW_TRACKING_URI=http://mlflow:5000 evalgate sweep examples/sweep.yaml

    report = sync_if_configured(settings, sweep_id=3)   # None: tracking off, or it failed (a warning)

A tracking failure (server down, bad URI, mlflow not installed) is logged as a warning on the
``evalgate.tracking`` logger and never fails the sweep or the job: the database is the source of truth,
and a later sync (``evalgate sweep`` or ``evalgate ci`` again) catches MLflow up.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Collection
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy.orm import Session, sessionmaker

from evalgate.core.settings import Settings

logger = logging.getLogger("evalgate.tracking")

DEFAULT_EXPERIMENT = "evalgate"
DEFAULT_ALIAS = "champion"
ALIAS = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
"""MLflow's alias rule: letters, digits, ``_`` and ``-``; ``latest`` and ``vN`` are reserved."""
RESERVED_ALIAS = re.compile(r"^(latest|v[0-9]+)$", re.IGNORECASE)
MODEL_SUFFIX = "-lora"


class TrackingConfigError(ValueError):
    """A tracking setting is malformed; the message names the setting."""


@dataclass(frozen=True)
class MlflowTarget:
    """An MLflow tracking server (or any tracking URI MLflow takes) and what to call things there."""

    tracking_uri: str
    experiment: str = DEFAULT_EXPERIMENT
    """The experiment every run goes to (created when missing)."""
    model_name: str | None = None
    """The registered model of promoted adapters; None: ``registered_model_name(base model)``."""
    alias: str = DEFAULT_ALIAS
    """The alias that follows the current promotion of each base model."""

    def __post_init__(self) -> None:
        if not self.tracking_uri.strip():
            raise TrackingConfigError("EVALGATE_MLFLOW_TRACKING_URI: must not be blank")
        if not self.experiment.strip():
            raise TrackingConfigError("EVALGATE_MLFLOW_EXPERIMENT: must not be blank")
        if self.model_name is not None and not self.model_name.strip():
            raise TrackingConfigError(
                "EVALGATE_MLFLOW_MODEL_NAME: must not be blank (unset it for the default)"
            )
        if not ALIAS.match(self.alias) or RESERVED_ALIAS.match(self.alias):
            raise TrackingConfigError(
                f"EVALGATE_MLFLOW_ALIAS: {self.alias!r} is not a usable alias (letters, digits, _ and -; "
                "not 'latest' nor v<number>)"
            )

    @classmethod
    def from_settings(cls, settings: Settings) -> MlflowTarget | None:
        """The target the settings name; None when ``mlflow_tracking_uri`` is unset or empty."""
        if not settings.mlflow_tracking_uri:
            return None
        return cls(
            tracking_uri=settings.mlflow_tracking_uri,
            experiment=settings.mlflow_experiment,
            model_name=settings.mlflow_model_name,
            alias=settings.mlflow_alias,
        )

    def registered_model(self, base_model: str) -> str:
        """The registered model a promoted adapter of ``base_model`` becomes a version of."""
        return self.model_name or registered_model_name(base_model)

    @property
    def display_uri(self) -> str:
        """The tracking URI with any password masked: the form to print or log."""
        return masked_uri(self.tracking_uri)


@dataclass(frozen=True)
class SyncReport:
    """What one sync did."""

    tracking_uri: str
    """Masked (``masked_uri``)."""
    experiment_id: str
    parent_run_id: str | None
    """The sweep's run (None when candidates without a sweep were synced)."""
    candidate_runs: dict[int, str] = field(default_factory=dict)
    """Candidate id -> its MLflow run id."""
    created: int = 0
    """Runs created by this sync (0 on a repeat: runs are found by their evalgate tags)."""
    model_versions: tuple[tuple[str, str], ...] = ()
    """``(registered model, version)`` of the promoted adapters."""

    def describe(self) -> str:
        """One line for the console."""
        runs = len(self.candidate_runs) + (self.parent_run_id is not None)
        line = f"mlflow: {runs} run(s) in experiment {self.experiment_id} at {self.tracking_uri}"
        line += f" ({self.created} new)"
        if self.model_versions:
            line += "; registered " + ", ".join(f"{name} v{version}" for name, version in self.model_versions)
        return line


def registered_model_name(base_model: str) -> str:
    """``<base model>-lora`` with every run of characters outside ``[A-Za-z0-9_.-]`` (``/`` of a hub id,
    the separators of a local path) made one ``-``: ``HuggingFaceTB/SmolLM2-135M`` ->
    ``HuggingFaceTB-SmolLM2-135M-lora``."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", base_model).strip("-.") or "model"
    return slug + MODEL_SUFFIX


def masked_uri(uri: str) -> str:
    """``uri`` with the password of ``user:password@host`` replaced by ``***``."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return uri.split(":", 1)[0] + "://***"
    if parts.password is None:
        return uri
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def sync_if_configured(
    settings: Settings,
    *,
    sweep_id: int | None = None,
    candidate_ids: Collection[int] = (),
    sessions: sessionmaker[Session] | None = None,
) -> SyncReport | None:
    """Mirror the sweep (or, without one, the candidates) into MLflow when a tracking URI is set.

    Returns the report, or None when tracking is off or the sync failed; a failure is logged as a
    warning naming the tracking URI and the cause, and never raised.
    """
    try:
        target = MlflowTarget.from_settings(settings)
    except TrackingConfigError as error:
        logger.warning("MLflow tracking skipped: %s", error)
        return None
    if target is None or (sweep_id is None and not candidate_ids):
        return None
    try:
        from evalgate.tracking import mlflow_sync
    except ImportError as error:
        logger.warning(
            "MLflow tracking skipped: EVALGATE_MLFLOW_TRACKING_URI is set but mlflow cannot be imported "
            "(%s); install it with pip install 'evalgate[mlflow]'",
            error,
        )
        return None
    if sessions is None:
        from evalgate.db.session import session_factory

        sessions = session_factory(settings.resolved_database_url)
    try:
        if sweep_id is not None:
            return mlflow_sync.sync_sweep(sessions, target, sweep_id)
        return mlflow_sync.sync_candidates(sessions, target, candidate_ids)
    except Exception as error:  # tracking mirrors the database: it never fails the sweep or the job
        what = f"sweep {sweep_id}" if sweep_id is not None else f"candidates {sorted(candidate_ids)}"
        logger.warning(
            "MLflow sync of %s to %s failed (the database is unaffected; the next sync catches up): %s: %s",
            what,
            target.display_uri,
            type(error).__name__,
            str(error).replace(target.tracking_uri, target.display_uri),
        )
        return None
