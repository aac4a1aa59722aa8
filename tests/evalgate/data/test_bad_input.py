"""Bad input gets a clear error naming file, place and field, and leaves nothing behind."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from evalgate.core.settings import Settings
from evalgate.data.rows import DatasetInputError
from evalgate.data.store import DatasetStore

GOOD = {"id": "ok-1", "question": "fine"}


def _assert_nothing_stored(store: DatasetStore) -> None:
    assert store.versions() == []
    datasets_dir = Path(store.artifact_root) / "datasets"
    leftovers = [p for p in datasets_dir.rglob("*") if p.is_file()] if datasets_dir.exists() else []
    assert leftovers == []


def _add_fails(store: DatasetStore, paths: list[str], pattern: str) -> DatasetInputError:
    with pytest.raises(DatasetInputError, match=pattern) as caught:
        store.add("bad", paths)
    _assert_nothing_stored(store)
    return caught.value


def test_malformed_jsonl_line_names_file_and_line(store: DatasetStore, write_jsonl) -> None:
    path = write_jsonl("a.jsonl", [GOOD, GOOD | {"id": "ok-2"}, '{"id": "x", "question": '])

    error = _add_fails(store, [path], "malformed JSON")

    assert error.source == path and error.where == "line 3"


def test_missing_required_field_names_line_and_field(store: DatasetStore, write_jsonl) -> None:
    path = write_jsonl("a.jsonl", [GOOD, {"id": "no-question", "context": "c"}])

    error = _add_fails(store, [path], "required but missing")

    assert (error.where, error.field) == ("line 2", "question")


def test_csv_missing_required_column_is_reported_at_the_header(store: DatasetStore, tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_text("id,context\n1,some context\n")

    error = _add_fails(store, [str(path)], r"missing required column\(s\): question")

    assert error.where == "line 1 (header)"


def test_duplicate_ids_across_files_name_both_places(store: DatasetStore, write_jsonl) -> None:
    first = write_jsonl("a.jsonl", [GOOD])
    second = write_jsonl("b.jsonl", [GOOD | {"id": "ok-2"}, GOOD])

    error = _add_fails(store, [first, second], "duplicate id 'ok-1'")

    assert error.source == second and error.where == "line 2" and first in error.message


def test_empty_file_is_refused(store: DatasetStore, tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text("\n  \n")

    _add_fails(store, [str(path)], "file is empty")


def test_non_utf8_bytes_name_the_line(store: DatasetStore, write_jsonl) -> None:
    path = write_jsonl("a.jsonl", [GOOD, b'{"id": "x", "question": "caf\xe9"}'])

    error = _add_fails(store, [path], "not valid UTF-8")

    assert error.where == "line 2"


def test_unknown_split_names_the_value(store: DatasetStore, write_jsonl) -> None:
    path = write_jsonl("a.jsonl", [GOOD, {"id": "x", "question": "q", "split": "holdout"}])

    error = _add_fails(store, [path], "unknown split 'holdout'")

    assert (error.where, error.field) == ("line 2", "split")


def test_file_over_the_size_limit_is_refused_before_reading(
    tmp_path: Path, database_url: str, write_jsonl
) -> None:
    small = DatasetStore.from_settings(
        Settings(home=tmp_path / "h", database_url=database_url, max_file_bytes=200)
    )
    path = write_jsonl("big.jsonl", [GOOD | {"id": f"r{i}"} for i in range(20)])

    _add_fails(small, [path], "over the size limit of 200 bytes")


def test_unreadable_parquet_is_refused(store: DatasetStore, tmp_path: Path) -> None:
    path = tmp_path / "broken.parquet"
    pq.write_table(pa.table({"id": ["a"], "question": ["b"]}), path)
    path.write_bytes(path.read_bytes()[:-20])

    _add_fails(store, [str(path)], "unreadable Parquet file")


def test_invalid_json_schema_is_refused(store: DatasetStore, write_jsonl) -> None:
    path = write_jsonl("a.jsonl", [GOOD | {"json_schema": {"type": "not-a-type"}}])

    error = _add_fails(store, [path], "not a valid JSON Schema")

    assert error.field == "json_schema"


@pytest.mark.parametrize(
    ("row", "field", "pattern"),
    [
        ({"id": "a", "question": ["list"]}, "question", "expected text, got list"),
        ({"id": "a", "question": "q", "cohort": "Bad Cohort!"}, "cohort", "invalid cohort"),
        ({"id": "a", "question": "q", "metadata": "[1]"}, "metadata", "expected a JSON object"),
        ({"id": "a", "question": "q", "prompt": "also"}, "question", "given more than once"),
        ({"id": "", "question": "q"}, "id", "required but missing"),
    ],
)
def test_bad_field_values_name_the_field(store: DatasetStore, write_jsonl, row, field, pattern) -> None:
    error = _add_fails(store, [write_jsonl("a.jsonl", [row])], pattern)

    assert error.field == field and error.where == "line 1"


def test_csv_row_with_extra_cells_names_the_line(store: DatasetStore, tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_text("id,question\n1,a\n2,b,surplus\n")

    error = _add_fails(store, [str(path)], "3 cells but the header has 2")

    assert error.where == "line 3"


def test_failure_while_registering_removes_the_written_files(
    store: DatasetStore, write_jsonl, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_register(*args: object, **kwargs: object) -> None:
        raise ConnectionError("database went away")

    monkeypatch.setattr(store, "_register", broken_register)

    with pytest.raises(ConnectionError):
        store.add("suite", [write_jsonl("a.jsonl", [GOOD])])
    _assert_nothing_stored(store)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=300), suffix=st.sampled_from([".jsonl", ".csv", ".parquet"]))
@example(data=b'{"id": "a", "question": "q"}\n', suffix=".jsonl")  # the version branch, every run
@example(data=b"id,question\n1,q\n2,r\n", suffix=".csv")
@example(data=b"id,question\n1\n", suffix=".csv")  # the error branch, every run
def test_arbitrary_bytes_give_a_clear_error_or_a_version(tmp_path: Path, data: bytes, suffix: str) -> None:
    store = DatasetStore.from_settings(Settings(home=tmp_path / "fuzz", database_url="sqlite://"))
    from evalgate.db.base import Base
    from evalgate.db.session import engine_for

    Base.metadata.create_all(engine_for("sqlite://"))
    path = tmp_path / f"input{suffix}"
    path.write_bytes(data)
    try:
        added = store.add("fuzz", [str(path)])
    except DatasetInputError as error:
        assert str(path) in str(error)
        return

    stored = store.rows(added.version.label)
    assert added.version.name == "fuzz" and added.version.row_count == len(stored) >= 1
    assert all(row_id and row["question"] for row_id, row in stored.items()), "a required field is empty"


def test_unicode_line_separators_inside_json_strings_are_valid(store: DatasetStore, write_jsonl) -> None:
    path = write_jsonl("a.jsonl", ['{"id": "a", "question": "one\u2028two"}', '{"id": "b", "question": "x"}'])

    info = store.add("separators", [path]).version

    assert store.rows(info.label)["a"]["question"] == "one\u2028two"


def test_metadata_that_json_cannot_hold_names_its_column(store: DatasetStore, tmp_path: Path) -> None:
    import datetime

    path = tmp_path / "rows.parquet"
    pq.write_table(pa.table({"id": ["a"], "question": ["q"], "when": [datetime.datetime(2026, 1, 1)]}), path)

    error = _add_fails(store, [str(path)], "cannot be stored as JSON metadata")

    assert (error.where, error.field) == ("row 1", "when")
