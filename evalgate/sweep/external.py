"""Candidates trained outside evalgate: register an adapter folder so it can be evaluated and gated.

    register_candidate(sessions, settings, CandidateRegistration(name=..., base_model=..., ...))
    register_candidate_once(sessions, settings, registration)   # (id, created): safe to repeat

The adapter must be a local PEFT folder (``adapter_config.json`` inside) that resolves, symlinks
followed, inside the artifact root or one of ``Settings.adapter_roots``: a path that climbs out with
``..`` or through a symlink is refused, so a token holder cannot make the worker read arbitrary files.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from evalgate.core.settings import Settings
from evalgate.db.locks import serialised
from evalgate.db.models import Candidate
from evalgate.db.session import session_scope
from evalgate.modeling.refs import model_fingerprint

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
    resolved = _resolve(location)
    roots = settings.allowed_adapter_roots
    if not any(resolved.is_relative_to(root) for root in roots):
        shown = ", ".join(str(root) for root in roots)
        raise AdapterLocationError(
            f"adapter_uri {location!r} resolves to {resolved}, outside the allowed roots ({shown})"
        )
    try:
        found = (resolved / ADAPTER_CONFIG).is_file()
    except OSError as error:  # a name too long for the file system, say
        raise AdapterLocationError(f"adapter_uri {location!r}: cannot be read ({error.strerror})") from None
    if not found:
        raise AdapterLocationError(f"adapter_uri {location!r}: no {ADAPTER_CONFIG} in {resolved}")
    return resolved


def _resolve(location: str) -> Path:
    """The absolute path ``location`` names, symlinks followed; ``AdapterLocationError`` for a relative
    path, a symlink loop, an unknown ``~user``, a NUL byte or a name the file system refuses."""
    try:
        raw = Path(location.removeprefix("file://")).expanduser()
        resolved = raw.resolve() if raw.is_absolute() else None
    except (RuntimeError, OSError, ValueError) as error:
        raise AdapterLocationError(f"adapter_uri {location!r}: cannot be resolved ({error})") from None
    if resolved is None:
        raise AdapterLocationError(f"adapter_uri {location!r}: give an absolute path")
    return resolved


def register_candidate(
    sessions: sessionmaker[Session], settings: Settings, registration: CandidateRegistration
) -> int:
    """Store the candidate (status ``trained``, its adapter fingerprinted); returns its id."""
    folder = resolve_adapter(registration.adapter_uri, settings)
    with session_scope(sessions) as session:
        return _insert(session, registration, folder, model_fingerprint(str(folder)))


def _insert(session: Session, registration: CandidateRegistration, folder: Path, fingerprint: str) -> int:
    """Add the candidate row (its rate and loss curve checked first); its id."""
    if registration.learning_rate is not None and not (
        math.isfinite(registration.learning_rate) and registration.learning_rate > 0
    ):
        raise ValueError(f"learning_rate must be a positive number, got {registration.learning_rate}")
    training = dict(registration.training)
    candidate = Candidate(
        sweep_id=None,
        name=registration.name,
        base_model=registration.base_model,
        learning_rate=registration.learning_rate,
        adapter_uri=str(folder),
        adapter_hash=fingerprint,
        status="trained",
        diagnosis=_diagnose(training.get("loss_curve")),
        training=training,
    )
    session.add(candidate)
    session.flush()
    return candidate.id


def register_candidate_once(
    sessions: sessionmaker[Session], settings: Settings, registration: CandidateRegistration
) -> tuple[int, bool]:
    """Register the candidate unless an identical registration exists; ``(id, created)``.

    Identical means the same name, base model, adapter folder and adapter content (fingerprint),
    learning rate and training record. This makes registering safe to repeat: a client whose POST
    was cut off (a restart, a dropped connection) sends it again and gets the candidate the first one
    created, never a duplicate. Two racing repeats cannot both insert: the check and the insert hold
    the lock of the registration's identity (``evalgate.db.locks.serialised``).
    """
    folder = resolve_adapter(registration.adapter_uri, settings)
    fingerprint = model_fingerprint(str(folder))
    identity = (registration.name, registration.base_model, str(folder), fingerprint)
    with serialised(sessions, "candidate", *identity) as session:
        same = session.scalars(
            select(Candidate).where(
                Candidate.sweep_id.is_(None),
                Candidate.name == registration.name,
                Candidate.base_model == registration.base_model,
                Candidate.adapter_uri == str(folder),
                Candidate.adapter_hash == fingerprint,
            )
        )
        for candidate in same:
            if candidate.learning_rate == registration.learning_rate and candidate.training == dict(
                registration.training
            ):
                return candidate.id, False
        return _insert(session, registration, folder, fingerprint), True


def _diagnose(curve: Any) -> str | None:
    """The loss curve's diagnosis (healthy, flat, oscillating, diverged), None without a curve."""
    if curve is None:
        return None
    if not isinstance(curve, list) or not all(isinstance(x, int | float) for x in curve):
        raise ValueError("training.loss_curve must be a list of numbers")
    from evalgate.sweep.diagnosis import diagnose

    return diagnose([float(x) for x in curve]).label if curve else None
