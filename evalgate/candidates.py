"""Candidates trained outside evalgate: register an adapter folder so it can be evaluated and gated.

    register_candidate(sessions, settings, CandidateRegistration(name=..., base_model=..., ...))

The adapter must be a local PEFT folder (``adapter_config.json`` inside) that resolves, symlinks
followed, inside the artifact root or one of ``Settings.adapter_roots``: a path that climbs out with
``..`` or through a symlink is refused, so a token holder cannot make the worker read arbitrary files.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from evalgate.db.models import Candidate
from evalgate.db.session import session_scope
from evalgate.model_refs import model_fingerprint
from evalgate.settings import Settings

ADAPTER_CONFIG = "adapter_config.json"


class AdapterLocationError(ValueError):
    """The adapter location is outside the allowed roots, missing, or not an adapter folder."""


@dataclass(frozen=True)
class CandidateRegistration:
    """An externally trained LoRA adapter and what is known about its training."""

    name: str
    base_model: str
    adapter_uri: str
    learning_rate: float | None = None
    training: dict[str, Any] = field(default_factory=dict)
    """Free-form training metadata; ``loss_curve`` (a list of numbers) is diagnosed if present."""


def resolve_adapter(location: str, settings: Settings) -> Path:
    """The adapter folder ``location`` resolved inside an allowed root; ``AdapterLocationError`` if not."""
    if "://" in location and not location.startswith("file://"):
        raise AdapterLocationError(f"adapter_uri {location!r}: only local folders are supported")
    raw = Path(location.removeprefix("file://")).expanduser()
    if not raw.is_absolute():
        raise AdapterLocationError(f"adapter_uri {location!r}: give an absolute path")
    resolved = raw.resolve()
    roots = settings.allowed_adapter_roots
    if not any(resolved.is_relative_to(root) for root in roots):
        shown = ", ".join(str(root) for root in roots)
        raise AdapterLocationError(
            f"adapter_uri {location!r} resolves to {resolved}, outside the allowed roots ({shown})"
        )
    if not (resolved / ADAPTER_CONFIG).is_file():
        raise AdapterLocationError(f"adapter_uri {location!r}: no {ADAPTER_CONFIG} in {resolved}")
    return resolved


def register_candidate(
    sessions: sessionmaker[Session], settings: Settings, registration: CandidateRegistration
) -> int:
    """Store the candidate (status ``trained``, its adapter fingerprinted); returns its id."""
    folder = resolve_adapter(registration.adapter_uri, settings)
    if registration.learning_rate is not None and not (
        math.isfinite(registration.learning_rate) and registration.learning_rate > 0
    ):
        raise ValueError(f"learning_rate must be a positive number, got {registration.learning_rate}")
    training = dict(registration.training)
    diagnosis = _diagnose(training.get("loss_curve"))
    with session_scope(sessions) as session:
        candidate = Candidate(
            sweep_id=None,
            name=registration.name,
            base_model=registration.base_model,
            learning_rate=registration.learning_rate,
            adapter_uri=str(folder),
            adapter_hash=model_fingerprint(str(folder)),
            status="trained",
            diagnosis=diagnosis,
            training=training,
        )
        session.add(candidate)
        session.flush()
        return candidate.id


def _diagnose(curve: Any) -> str | None:
    """The loss curve's diagnosis (healthy, flat, oscillating, diverged), None without a curve."""
    if curve is None:
        return None
    if not isinstance(curve, list) or not all(isinstance(x, int | float) for x in curve):
        raise ValueError("training.loss_curve must be a list of numbers")
    from evalgate.diagnosis import diagnose

    return diagnose([float(x) for x in curve]).label if curve else None
