"""The versioned dataset store: immutable, hashed versions of evaluation sets.

    evalgate datasets add my-suite rows.jsonl more.csv      # -> my-suite@v1
    python -c "from evalgate.data import store; print(store.load('my-suite', 1))"

``add`` validates every input row before anything is written (a bad row means no version and no
files), writes content-addressed Parquet files, then registers the version in the database. Version
numbers come from ``max + 1`` under a unique constraint, retried when two writers collide. Adding
content identical to an existing version returns that version. An add that fails after writing (the
database went away, the disk filled) removes its files, deciding without the database when that is
what failed.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import datasets
import fsspec
from sqlalchemy import Select, func, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, selectinload, sessionmaker

from evalgate.core.settings import Settings, get_settings
from evalgate.data.readers import read_records
from evalgate.data.rows import DatasetInputError, RowDefaults, normalise_row
from evalgate.data.store_files import (
    DatasetIntegrityError,
    Row,
    content_hash,
    read_verified_split,
    remove_folder,
    write_version_files,
)
from evalgate.db.models import Dataset, DatasetVersion
from evalgate.db.session import session_factory, session_scope

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
VERSION_PATTERN = re.compile(r"v?([0-9]+)")
MAX_VERSION = 2**31 - 1
"""The largest version number: the version and id columns are 32-bit integers."""
REGISTER_ATTEMPTS = 8
log = logging.getLogger(__name__)


class DatasetNotFoundError(LookupError):
    """No dataset or version by that name."""


@dataclass(frozen=True)
class VersionRef:
    """``NAME``, ``NAME@vN`` or ``NAME@latest``; ``number`` None means the latest version."""

    name: str
    number: int | None = None

    @classmethod
    def parse(cls, text: str) -> VersionRef:
        """Parse ``NAME[@vN|@N|@latest]``; N is ASCII digits from 1 to ``MAX_VERSION``, so a number the
        database cannot hold is refused here, naming the ref, not as an overflow in a query."""
        name, _, version = text.partition("@")
        if not version or version == "latest":
            return cls(name)
        match = VERSION_PATTERN.fullmatch(version)
        digits = match.group(1).lstrip("0") if match else ""
        if not digits or len(digits) > len(str(MAX_VERSION)) or int(digits) > MAX_VERSION:
            raise ValueError(
                f"bad version {version!r} in {text!r}: expected vN with 1 <= N <= {MAX_VERSION}, or latest"
            )
        return cls(name, int(digits))


@dataclass(frozen=True)
class VersionInfo:
    """A stored version's metadata, detached from the database session."""

    name: str
    number: int
    content_hash: str
    storage_uri: str
    row_count: int
    counts: dict[str, dict[str, int]]
    files: dict[str, dict[str, Any]]
    sources: list[dict[str, Any]]
    created_at: datetime

    @property
    def label(self) -> str:
        """``name@vN``."""
        return f"{self.name}@v{self.number}"

    @classmethod
    def from_row(cls, version: DatasetVersion) -> VersionInfo:
        """Copy the fields of a loaded ``DatasetVersion`` (its dataset loaded too)."""
        return cls(
            name=version.dataset.name,
            number=version.number,
            content_hash=version.content_hash,
            storage_uri=version.storage_uri,
            row_count=version.row_count,
            counts=version.counts,
            files=version.files,
            sources=version.sources,
            created_at=version.created_at,
        )


@dataclass
class _Registration:
    """What an add knows of its version's row, for the cleanup after a failure."""

    may_exist: bool = False
    """Set once the add saw the content registered, or flushed its insert: leaving the session then
    commits, and a connection that dies during COMMIT leaves the outcome unknown."""


@dataclass(frozen=True)
class AddResult:
    """The version an ``add`` produced, and whether it is new (False: identical content existed)."""

    version: VersionInfo
    created: bool


class DatasetStore:
    """Dataset versions: rows in Parquet under ``artifact_root``, metadata in the database."""

    def __init__(self, sessions: sessionmaker[Session], artifact_root: str, settings: Settings):
        self.sessions = sessions
        self.artifact_root = artifact_root.rstrip("/")
        self.settings = settings

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> DatasetStore:
        """A store on the configured database and artifact root."""
        settings = settings or get_settings()
        return cls(session_factory(settings.resolved_database_url), settings.resolved_artifact_root, settings)

    # -- writing ---------------------------------------------------------------------------------

    def add(
        self,
        name: str,
        paths: Sequence[str],
        *,
        cohort: str = "target",
        split: str = "eval",
        description: str = "",
    ) -> AddResult:
        """Import ``paths`` as a new version of ``name`` (or return the identical existing one)."""
        _check_name(name)
        defaults = RowDefaults(cohort=cohort, split=split, max_field_chars=self.settings.max_field_chars)
        rows, sources = self._read_inputs(paths, defaults)
        digest = content_hash(rows)
        existing = self._find_by_hash(name, digest)
        if existing is not None:
            return AddResult(existing, created=False)
        folder = f"{self.artifact_root}/datasets/{name}/{digest}"
        shared = _folder_exists(folder)  # another add of the same content wrote it, or is writing it
        registration = _Registration()
        try:
            files = write_version_files(folder, rows)
            return self._register(name, description, digest, folder, rows, files, sources, registration)
        except BaseException:
            self._discard_unregistered(name, digest, folder, keep_if_unsure=shared or registration.may_exist)
            raise

    def _discard_unregistered(self, name: str, digest: str, folder: str, keep_if_unsure: bool) -> None:
        """After a failed add: remove ``folder`` unless a registered version uses it.

        The database says whether one does. When it cannot answer (the add most likely failed because
        the database went away), the folder is removed without asking, unless ``keep_if_unsure``: it was
        there before this add wrote it, or this add's own version may have been committed. Files a
        committed version needs are never removed; an unregistered folder kept in doubt is logged, and
        the next add of the same content uses it.
        """
        try:
            in_use = self._find_by_hash(name, digest) is not None
        except SQLAlchemyError as error:
            in_use = keep_if_unsure
            if in_use:
                log.warning("kept %s after a failed add of %r: the database could not say whether a "
                            "version uses it (%s)", folder, name, type(error).__name__)  # fmt: skip
        if not in_use:
            remove_folder(folder)

    def _read_inputs(
        self, paths: Sequence[str], defaults: RowDefaults
    ) -> tuple[list[Row], list[dict[str, Any]]]:
        if not paths:
            raise DatasetInputError("<arguments>", "no input files given")
        rows: list[Row] = []
        first_seen: dict[str, str] = {}
        sources = []
        for path in paths:
            count = 0
            for where, record in read_records(path, self.settings.max_file_bytes):
                row = normalise_row(record, defaults, path, where)
                row_id = row["id"] or ""
                if row_id in first_seen:
                    raise DatasetInputError(
                        path,
                        f"duplicate id {row_id!r} (first seen at {first_seen[row_id]})",
                        where=where,
                        field="id",
                    )
                first_seen[row_id] = f"{path}: {where}"
                rows.append(row)
                count += 1
                if len(rows) > self.settings.max_rows:
                    raise DatasetInputError(path, f"more than the limit of {self.settings.max_rows} rows")
            if count == 0:
                raise DatasetInputError(path, "file has no rows")
            sources.append({"name": path, "rows": count})
        return rows, sources

    def _register(
        self,
        name: str,
        description: str,
        digest: str,
        folder: str,
        rows: list[Row],
        files: dict[str, dict[str, Any]],
        sources: list[dict[str, Any]],
        registration: _Registration,
    ) -> AddResult:
        """Insert the version as ``max(number) + 1``; on a unique-constraint clash, look again.
        ``registration.may_exist`` is set as soon as a version row for the content may exist."""
        counts = _count_cohorts(rows)
        for _ in range(REGISTER_ATTEMPTS):
            try:
                with session_scope(self.sessions) as session:
                    dataset = _get_or_create_dataset(session, name, description)
                    clash = _version_query(session, name).where(DatasetVersion.content_hash == digest)
                    if (found := session.scalars(clash).first()) is not None:
                        registration.may_exist = True
                        return AddResult(VersionInfo.from_row(found), created=False)
                    number = _next_number(session, dataset.id)
                    version = DatasetVersion(
                        dataset=dataset,
                        number=number,
                        content_hash=digest,
                        storage_uri=folder,
                        row_count=len(rows),
                        counts=counts,
                        files=files,
                        sources=sources,
                    )
                    session.add(version)
                    session.flush()
                    registration.may_exist = True
                    return AddResult(VersionInfo.from_row(version), created=True)
            except IntegrityError:
                continue
        raise RuntimeError(f"could not register a version of {name!r} after {REGISTER_ATTEMPTS} attempts")

    # -- reading ---------------------------------------------------------------------------------

    def get(self, ref: VersionRef | str) -> VersionInfo:
        """Metadata of ``NAME@vN`` (or the latest version)."""
        ref = VersionRef.parse(ref) if isinstance(ref, str) else ref
        with session_scope(self.sessions) as session:
            query = _version_query(session, ref.name)
            if ref.number is not None:
                query = query.where(DatasetVersion.number == ref.number)
            version = session.scalars(query.order_by(DatasetVersion.number.desc())).first()
            if version is None:
                raise DatasetNotFoundError(_not_found_message(session, ref))
            return VersionInfo.from_row(version)

    def versions(self, name: str | None = None) -> list[VersionInfo]:
        """Every version, of one dataset or of all, ordered by name then number."""
        with session_scope(self.sessions) as session:
            query = select(DatasetVersion).join(Dataset).options(selectinload(DatasetVersion.dataset))
            if name is not None:
                query = query.where(Dataset.name == name)
            ordered = query.order_by(Dataset.name, DatasetVersion.number)
            return [VersionInfo.from_row(version) for version in session.scalars(ordered)]

    def load(self, ref: VersionRef | str) -> datasets.DatasetDict:
        """The version's splits as a ``DatasetDict``, after verifying every file's sha256."""
        info = self.get(ref)
        return datasets.DatasetDict(
            {
                split: datasets.Dataset(read_verified_split(info.storage_uri, entry))
                for split, entry in info.files.items()
            }
        )

    def rows(self, ref: VersionRef | str) -> dict[str, Row]:
        """All rows of a version keyed by id (hash-verified)."""
        return {row["id"]: row for split in self.load(ref).values() for row in split}

    def verify(self, name: str | None = None) -> list[str]:
        """Re-read and re-hash every stored file (of every version of ``name``, or of all datasets);
        one line per file that is missing or changed, empty when all are intact. Run after a restore."""
        problems = []
        for info in self.versions(name):
            for split, entry in sorted(info.files.items()):
                try:
                    read_verified_split(info.storage_uri, entry)
                except DatasetIntegrityError as error:
                    problems.append(f"{info.label} {split}: {error}")
        return problems

    def _find_by_hash(self, name: str, digest: str) -> VersionInfo | None:
        with session_scope(self.sessions) as session:
            query = _version_query(session, name).where(DatasetVersion.content_hash == digest)
            found = session.scalars(query).first()
            return VersionInfo.from_row(found) if found else None


def load(name: str, version: int | str | None = None) -> datasets.DatasetDict:
    """Load ``name`` at ``version`` (int, ``"vN"``, or None for the latest) from the default store."""
    ref = VersionRef(name) if version is None else VersionRef.parse(f"{name}@{version}")
    return DatasetStore.from_settings().load(ref)


def _folder_exists(folder: str) -> bool:
    fs, path = fsspec.core.url_to_fs(folder)
    return bool(fs.exists(path))


def _check_name(name: str) -> None:
    if not NAME_PATTERN.match(name) or ".." in name:
        raise DatasetInputError(
            "<name>", f"invalid dataset name {name!r}: use letters, digits, '.', '_' or '-' (max 200)"
        )


def _count_cohorts(rows: list[Row]) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {}
    for (cohort, split), number in sorted(Counter((row["cohort"], row["split"]) for row in rows).items()):
        counts.setdefault(cohort or "", {})[split or ""] = number
    return counts


def _version_query(session: Session, name: str) -> Select[DatasetVersion]:
    return (
        select(DatasetVersion)
        .join(Dataset)
        .where(Dataset.name == name)
        .options(selectinload(DatasetVersion.dataset))
    )


def _get_or_create_dataset(session: Session, name: str, description: str) -> Dataset:
    dataset = session.scalars(select(Dataset).where(Dataset.name == name)).first()
    if dataset is None:
        dataset = Dataset(name=name, description=description)
        session.add(dataset)
        session.flush()
    return dataset


def _next_number(session: Session, dataset_id: int) -> int:
    current = session.scalar(
        select(func.max(DatasetVersion.number)).where(DatasetVersion.dataset_id == dataset_id)
    )
    return (current or 0) + 1


def _not_found_message(session: Session, ref: VersionRef) -> str:
    numbers = session.scalars(_version_query(session, ref.name)).all()
    if not numbers:
        return f"no dataset named {ref.name!r}"
    available = ", ".join(f"v{version.number}" for version in numbers)
    return f"{ref.name} has no version v{ref.number} (available: {available})"
