"""The dataset importer fuzzed with malformed JSONL, CSV and Parquet: a clear error or a whole version.

    EVALGATE_FIGURES_FILE=/tmp/figures.jsonl pytest tests/reliability/test_import_fuzz.py -m reliability

Hypothesis builds hostile files: rows of the wrong types, missing and extra fields and columns,
duplicate ids, nested junk, huge integers, NaN and Infinity, lone surrogates, deep nesting, bad
encodings, truncation, flipped bytes, and valid Parquet files whose schema is wrong (binary, struct,
list, decimal, timestamps past year 9999, a null column). Each file goes through
``DatasetStore.add`` (and some through ``POST /datasets/{name}/versions``), and must end in one of:

- a new, complete version: one more version, its files the only new ones, and it loads hash-verified
  with the row count it claims (or, for content already stored, that version, with nothing written);
- a ``DatasetInputError`` that names the file (and, when it names a field, the line or row too),
  with the number of versions and the files under the artifact root unchanged.

Anything else (another exception type, a partial version, a 5xx) is counted as a server error; every
case runs, then the figures are recorded and the count must be zero. ``tests/evalgate/data/test_bad_input.py``
has the hand-written cases; this module adds the generated ones.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, example, given, settings

import evalgate.core.quiet  # noqa: F401  (no progress bars from the Parquet writer)
from api.main import create_app
from evalgate.core.settings import Settings
from evalgate.data.rows import DatasetInputError
from evalgate.data.store import DatasetStore
from evalgate.db.migrate import upgrade
from evalgate.service.api_tokens import create_token
from tests.reliability.figures import record
from tests.reliability.hostile_files import HostileFile, hostile_files, regressions

pytestmark = pytest.mark.reliability

EXAMPLES = 420
UPLOAD_EXAMPLES = 60
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)


@dataclass
class Outcomes:
    """Per format: cases tried, versions created, inputs refused; and what broke the contract."""

    cases: dict[str, int] = field(default_factory=dict)
    created: int = 0
    refused: int = 0
    broken: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        """Every case, all formats together."""
        return sum(self.cases.values())


def stored_files(root: Path) -> dict[str, int]:
    """Every file under the artifact root with its size."""
    return (
        {str(path): path.stat().st_size for path in root.rglob("*") if path.is_file()}
        if root.exists()
        else {}
    )


def check_version(
    store: DatasetStore, before: tuple[int, dict[str, int]], label: str, created: bool
) -> str | None:
    """What is wrong with the version an import returned (None: it is whole and alone)."""
    count, files = before
    root = Path(store.artifact_root)
    after, now = len(store.versions()), stored_files(root)
    if not created:
        return (
            None
            if (after, now) == (count, files)
            else "an existing version was returned but something changed"
        )
    if after != count + 1:
        return f"{after - count} versions were added"
    info = store.get(label)
    added = set(now) - set(files)
    if any(not path.startswith(info.storage_uri) for path in added) or set(files) - set(now):
        return f"files outside the version's folder changed: {sorted(added)}"
    rows = sum(len(split) for split in store.load(label).values())
    return None if rows == info.row_count else f"{rows} rows load but the version claims {info.row_count}"


def check_refusal(
    store: DatasetStore, before: tuple[int, dict[str, int]], path: str, error: DatasetInputError
) -> str | None:
    """What is wrong with a refusal (None: it names the file, places a field error, left nothing)."""
    if error.source != path or not str(error).startswith(path):
        return f"the error does not name the file: {error}"
    if error.field is not None and error.where is None:
        return f"the error names a field but not where it is: {error}"
    if (len(store.versions()), stored_files(Path(store.artifact_root))) != before:
        return f"a refused import left a version or files behind: {error}"
    return None


def import_once(store: DatasetStore, folder: Path, suffix: str, data: bytes) -> tuple[bool, str | None]:
    """Import ``data`` as one file; ``(refused, what broke the contract or None)``."""
    path = folder / f"input{suffix}"
    path.write_bytes(data)
    before = (len(store.versions()), stored_files(Path(store.artifact_root)))
    try:
        result = store.add("fuzz", [str(path)])
    except DatasetInputError as error:
        return True, check_refusal(store, before, str(path), error)
    except Exception as error:  # the contract allows only DatasetInputError
        return True, f"{type(error).__name__}: {error}"
    return False, check_version(store, before, result.version.label, result.created)


def fresh_store(tmp_path: Path, name: str) -> Settings:
    """Settings on a new migrated SQLite database with the small limits."""
    url = f"sqlite:///{tmp_path / f'{name}.db'}"
    upgrade(url)
    return Settings(  # small limits, so generated files also cross them
        home=tmp_path / name,
        database_url=url,
        rate_limit_per_second=0,
        max_rows=40,
        max_field_chars=400,
        max_file_bytes=64_000,
    )


def test_malformed_files_give_a_clear_error_or_a_whole_version(tmp_path: Path) -> None:
    """Generated JSONL, CSV and Parquet files through ``DatasetStore.add``: no other exception, no
    partial version."""
    store = DatasetStore.from_settings(fresh_store(tmp_path, "store"))
    folder = tmp_path / "inputs"
    folder.mkdir()
    outcomes = Outcomes()

    def attempt(case: HostileFile) -> None:
        suffix, data, recipe = case
        outcomes.cases[suffix] = outcomes.cases.get(suffix, 0) + 1
        refused, broken = import_once(store, folder, suffix, data)
        outcomes.refused += refused
        outcomes.created += not refused
        if broken:
            outcomes.broken.append(f"{suffix} ({recipe}): {broken}")

    fuzz = FUZZ(given(case=hostile_files())(attempt))
    for case in regressions():
        fuzz = example(case=case)(fuzz)
    fuzz()
    record("bad_input", "dataset importer fuzz (jsonl/csv/parquet)", cases=outcomes.total,
           server_errors=len(outcomes.broken))  # fmt: skip
    assert not outcomes.broken, "\n".join(outcomes.broken[:20])
    assert outcomes.total >= 400 and all(
        outcomes.cases.get(s, 0) >= 60 for s in (".jsonl", ".csv", ".parquet")
    )
    assert outcomes.refused >= 100 and outcomes.created >= 20, outcomes  # both paths were exercised


def test_malformed_uploads_get_a_422_naming_the_file_or_a_version(tmp_path: Path) -> None:
    """The same files posted to ``POST /datasets/{name}/versions``: a version (new, or the identical one
    already stored), or a 422 naming the file; never a 5xx."""
    settings_ = fresh_store(tmp_path, "api")
    store = DatasetStore.from_settings(settings_)
    token = create_token(store.sessions, "uploader", "write")
    api = TestClient(create_app(settings_), raise_server_exceptions=False)
    formats = {".jsonl": "jsonl", ".csv": "csv", ".parquet": "parquet"}
    outcomes = Outcomes()

    @settings(FUZZ, max_examples=UPLOAD_EXAMPLES)
    @given(case=hostile_files())
    def attempt(case: HostileFile) -> None:
        suffix, data, recipe = case
        outcomes.cases[suffix] = outcomes.cases.get(suffix, 0) + 1
        before = (len(store.versions()), stored_files(Path(store.artifact_root)))
        response = api.post(
            "/datasets/fuzz/versions",
            params={"format": formats[suffix], "filename": "fuzzed"},
            content=data,
            headers={"Authorization": f"Bearer {token}"},
        )
        broken = None
        if response.status_code in (200, 201):
            body = response.json()
            broken = check_version(store, before, body["label"], bool(body["created"]))
        elif response.status_code != 422 or "fuzzed" + suffix not in json.dumps(response.json()):
            broken = f"{response.status_code}: {response.text[:300]}"
        elif (len(store.versions()), stored_files(Path(store.artifact_root))) != before:
            broken = "a refused upload left a version or files behind"
        if broken:
            outcomes.broken.append(f"{suffix} ({recipe}): {broken}")

    attempt()
    record("bad_input", "dataset upload fuzz (POST /datasets)", cases=outcomes.total,
           server_errors=len(outcomes.broken))  # fmt: skip
    assert not outcomes.broken, "\n".join(outcomes.broken[:20])
    assert outcomes.total >= UPLOAD_EXAMPLES * 3 // 4
