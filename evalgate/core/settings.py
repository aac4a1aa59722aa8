"""Settings: one object read from the environment (prefix ``EVALGATE_``).

    EVALGATE_DATABASE_URL=postgresql+psycopg://user@host/db evalgate datasets list

Everything evalgate writes lives under ``home`` (artifacts, model caches, the HF cache) unless
``artifact_root`` points elsewhere (an ``s3://`` or ``gs://`` URL works through fsspec).
``HF_HUB_OFFLINE`` is honoured where models are loaded (``evalgate.modeling.loading``).
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

MIB = 1024 * 1024


class Settings(BaseSettings):
    """Runtime configuration; every field can be set as ``EVALGATE_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="EVALGATE_", frozen=True)

    home: Path = Field(default_factory=lambda: Path.home() / ".evalgate")
    """Root folder for the embedded database, artifacts and caches."""

    database_url: str | None = None
    """SQLAlchemy URL; default: a SQLite file ``<home>/evalgate.db``."""

    artifact_root: str | None = None
    """Where dataset files and adapters go (local path or fsspec URL); default ``<home>/artifacts``."""

    max_file_bytes: int = Field(default=256 * MIB, gt=0)
    """Largest single input file a dataset import accepts."""

    max_rows: int = Field(default=1_000_000, gt=0)
    """Most rows one dataset version may hold."""

    max_field_chars: int = Field(default=100_000, gt=0)
    """Longest text a single field (question, context, reference) may hold."""

    adapter_roots: list[str] = Field(default_factory=list)
    """Extra local folders a registered candidate's adapter may live in (besides the artifact root);
    JSON list in the environment: ``EVALGATE_ADAPTER_ROOTS='["/data/adapters"]'``."""

    max_upload_bytes: int = Field(default=256 * MIB, gt=0)
    """Largest request body the API accepts (dataset uploads); larger ones get 413."""

    job_lease_seconds: float = Field(default=60.0, gt=0)
    """A running job whose worker has not heartbeated for this long is requeued (or failed)."""

    job_heartbeat_seconds: float | None = Field(default=None, gt=0)
    """How often a worker refreshes its job's lease and stores its progress; unset: a quarter of the
    lease, at most 5 s. Keep it well below the lease: a lease survives only the beats it outlasts."""

    rate_limit_per_second: float = Field(default=100.0, ge=0)
    """Requests per second one API token may make, sustained (token bucket); 0 turns the limit off."""

    rate_limit_burst: int = Field(default=500, gt=0)
    """Requests one API token may make at once before ``rate_limit_per_second`` applies."""

    auth_failures_per_minute: float = Field(default=60.0, ge=0)
    """Requests with an unknown or revoked token (or a failed login) one client address may make per
    minute, in bursts of as many; 0 turns the limit off."""

    redis_url: str | None = None
    """Redis URL (``redis://redis:6379/0``); set, the rate limits are shared by every API process using
    it (``evalgate serve --workers N``, several hosts). Unset: each process limits on its own. While it
    is unreachable, each process falls back to its own limits (a warning a minute) until it returns."""

    session_secret: SecretStr | None = None
    """Key signing the dashboard's session cookies; unset: a random one generated on first use and kept
    in ``<home>/session-secret`` (readable by its owner only). Every API process must share it."""

    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Browser origins allowed to call the API cross-site (``https://ci.example.com``); comma-separated
    in the environment. Empty (the default): no CORS headers at all, so browsers refuse cross-site calls."""

    metrics_access: Literal["local", "token", "public", "off"] = "local"
    """Who may read ``/metrics``: ``local`` (the default) clients on a loopback address without a token,
    others with an admin token; ``token`` an admin token always; ``public`` anyone (a Prometheus on a
    private network); ``off`` not served at all."""

    log_format: Literal["text", "json"] | None = None
    """How the API logs (``evalgate serve --log-format``): ``text`` lines or ``json`` objects, one a line,
    each with its request's id. Unset: logging is left as the process set it up."""

    mlflow_tracking_uri: str | None = None
    """MLflow tracking URI (``http://mlflow:5000``); set, ``evalgate sweep`` and ``evalgate ci`` mirror
    sweeps, evaluations, decisions and promotions into it (``pip install 'evalgate[mlflow]'``)."""

    mlflow_experiment: str = "evalgate"
    """The MLflow experiment the mirrored runs go to."""

    mlflow_model_name: str | None = None
    """Registered model of promoted adapters; default ``<base model with / as ->-lora``."""

    mlflow_alias: str = "champion"
    """Alias of the registered model version of a base model's current promotion."""

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [origin.strip().rstrip("/") for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("home", mode="after")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @property
    def resolved_database_url(self) -> str:
        """The database URL in force: the explicit one, else SQLite under ``home``."""
        return self.database_url or f"sqlite:///{self.home / 'evalgate.db'}"

    @property
    def display_database_url(self) -> str:
        """The database URL in force with any password masked: the form to print or log."""
        url = self.resolved_database_url
        try:
            return make_url(url).render_as_string(hide_password=True)
        except ArgumentError:  # not a URL SQLAlchemy can parse: show only its scheme
            return url.split(":", 1)[0] + "://***"

    @property
    def resolved_artifact_root(self) -> str:
        """The artifact root in force, without a trailing slash."""
        return (self.artifact_root or str(self.home / "artifacts")).rstrip("/")

    @property
    def allowed_adapter_roots(self) -> list[Path]:
        """Local folders (resolved) that registered adapters must lie inside."""
        roots = [*self.adapter_roots]
        artifact_root = self.resolved_artifact_root
        if "://" not in artifact_root or artifact_root.startswith("file://"):
            roots.append(artifact_root.removeprefix("file://"))
        return [Path(root).expanduser().resolve() for root in roots]


def configure_environment(settings: Settings) -> None:
    """Create ``home`` and point the HF cache inside it unless the user already chose one."""
    settings.home.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("HF_HOME", str(settings.home / "hf"))


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    settings = Settings()
    configure_environment(settings)
    return settings
