"""The dataset store round-trips on SQLite and PostgreSQL: versions, hashes, diff, export, races."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from evalgate.data.dataset_ops import diff_versions, export_version
from evalgate.data.store import DatasetNotFoundError, DatasetStore, VersionRef
from evalgate.data.store_files import DatasetIntegrityError

SCHEMA = {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}


def _rows(n: int, prefix: str = "r") -> list[dict[str, object]]:
    return [
        {
            "id": f"{prefix}{i}",
            "question": f"question {i}",
            "context": f"context {i}",
            "reference": {"name": f"n{i}"} if i % 2 else f"answer {i}",
            "cohort": ["target", "ood", "safety"][i % 3],
            "split": "train" if i % 4 == 0 else "eval",
            "json_schema": SCHEMA if i % 3 == 0 else None,
            "extra_field": i,
        }
        for i in range(n)
    ]


def test_add_then_load_returns_every_row_normalised(store: DatasetStore, write_jsonl) -> None:
    result = store.add("suite", [write_jsonl("a.jsonl", _rows(12))])

    assert result.created and result.version.label == "suite@v1"
    loaded = store.load("suite@v1")
    assert set(loaded) == {"train", "eval"}
    assert loaded["train"].num_rows + loaded["eval"].num_rows == 12
    row = store.rows("suite")["r1"]
    assert row["reference"] == '{"name":"n1"}'
    assert json.loads(row["metadata"] or "{}") == {"extra_field": 1}
    assert row["context"] == "context 1" and row["cohort"] == "ood" and row["json_schema"] is None
    assert json.loads(store.rows("suite")["r3"]["json_schema"] or "null") == SCHEMA


def test_counts_per_cohort_and_split_are_recorded(store: DatasetStore, write_jsonl) -> None:
    info = store.add("suite", [write_jsonl("a.jsonl", _rows(12))]).version

    expected: dict[str, dict[str, int]] = {}
    for row in _rows(12):
        cohort, split = str(row["cohort"]), str(row["split"])
        expected.setdefault(cohort, {}).setdefault(split, 0)
        expected[cohort][split] += 1
    assert info.counts == expected and info.row_count == 12


def test_identical_content_returns_the_existing_version(store: DatasetStore, write_jsonl) -> None:
    first = store.add("suite", [write_jsonl("a.jsonl", _rows(5))])
    shuffled = write_jsonl("b.jsonl", list(reversed(_rows(5))))
    again = store.add("suite", [shuffled])

    assert not again.created and again.version.number == first.version.number
    assert len(store.versions("suite")) == 1


def test_changed_content_gets_the_next_number(store: DatasetStore, write_jsonl) -> None:
    store.add("suite", [write_jsonl("a.jsonl", _rows(5))])
    second = store.add("suite", [write_jsonl("b.jsonl", _rows(6))])

    assert second.created and second.version.number == 2
    assert store.get("suite").number == 2 and store.get("suite@v1").number == 1


def test_tampered_file_is_refused_on_load(store: DatasetStore, write_jsonl) -> None:
    info = store.add("suite", [write_jsonl("a.jsonl", _rows(8))]).version
    path = Path(info.storage_uri) / info.files["eval"]["path"]
    table = pq.read_table(path)
    tampered = table.set_column(1, "question", pa.array(["changed"] * table.num_rows))
    pq.write_table(tampered, path)

    with pytest.raises(DatasetIntegrityError, match="modified after it was stored"):
        store.load("suite@v1")


def test_deleted_file_is_refused_on_load(store: DatasetStore, write_jsonl) -> None:
    info = store.add("suite", [write_jsonl("a.jsonl", _rows(8))]).version
    (Path(info.storage_uri) / info.files["train"]["path"]).unlink()

    with pytest.raises(DatasetIntegrityError, match="missing"):
        store.load(VersionRef("suite", 1))


def test_unknown_version_names_the_available_ones(store: DatasetStore, write_jsonl) -> None:
    store.add("suite", [write_jsonl("a.jsonl", _rows(3))])

    with pytest.raises(DatasetNotFoundError, match=r"no version v7 \(available: v1\)"):
        store.get("suite@v7")
    with pytest.raises(DatasetNotFoundError, match="no dataset named 'other'"):
        store.load("other")


@pytest.mark.parametrize("version", ["v0", "v2147483648", "v99999999999999999999", "v-1", "vx", "v\u0663"])
def test_a_version_number_the_database_cannot_hold_is_refused_naming_the_ref(
    store: DatasetStore, write_jsonl, version: str
) -> None:
    store.add("suite", [write_jsonl("a.jsonl", _rows(3))])

    with pytest.raises(ValueError, match=f"bad version '{version}' in 'suite@{version}'.*2147483647"):
        store.get(f"suite@{version}")
    assert VersionRef.parse("suite@v2147483647").number == 2**31 - 1  # the largest still parses


def test_diff_reports_added_removed_and_changed_rows(store: DatasetStore, write_jsonl) -> None:
    old = _rows(6)
    new = [dict(row) for row in old[1:]] + [{"id": "extra", "question": "new one"}]
    new[0]["question"] = "edited"
    store.add("suite", [write_jsonl("a.jsonl", old)])
    store.add("suite", [write_jsonl("b.jsonl", new)])

    diff = diff_versions(store, "suite@v1", "suite@v2")

    assert diff.added == ["extra"] and diff.removed == ["r0"]
    assert diff.changed == {"r1": ["question"]} and diff.unchanged == 4


@pytest.mark.parametrize("fmt", ["jsonl", "parquet", "hf"])
def test_export_reimports_to_the_same_content_hash(
    store: DatasetStore, write_jsonl, tmp_path: Path, fmt: str
) -> None:
    original = store.add("suite", [write_jsonl("a.jsonl", _rows(9))]).version
    exported = export_version(store, "suite@v1", tmp_path / f"export.{fmt}", fmt)

    inputs = sorted(str(p) for p in exported.glob("*.parquet")) if fmt == "parquet" else [str(exported)]
    again = store.add("copy", inputs)

    assert again.version.content_hash == original.content_hash


def test_csv_and_parquet_inputs_import_alongside_jsonl(
    store: DatasetStore, tmp_path: Path, write_jsonl
) -> None:
    csv_path = tmp_path / "rows.csv"
    csv_path.write_text('id,prompt,expected,cohort\nc1,hello,world,ood\nc2,"a, b",,target\n')
    parquet_path = tmp_path / "rows.parquet"
    pq.write_table(pa.table({"id": ["p1"], "input": ["from parquet"], "split": ["test"]}), parquet_path)

    info = store.add("mixed", [str(csv_path), str(parquet_path), write_jsonl("a.jsonl", _rows(2))]).version

    rows = store.rows(info.label)
    assert rows["c1"]["question"] == "hello" and rows["c1"]["reference"] == "world"
    assert rows["c2"]["question"] == "a, b" and rows["c2"]["reference"] is None
    assert rows["p1"]["split"] == "test" and info.row_count == 5


def test_saved_hf_dataset_folder_imports_with_its_split_names(store: DatasetStore, tmp_path: Path) -> None:
    import datasets

    folder = tmp_path / "hf"
    datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict({"id": ["t1", "t2"], "question": ["a", "b"]}),
            "validation": datasets.Dataset.from_dict({"id": ["v1"], "question": ["c"]}),
        }
    ).save_to_disk(str(folder))

    info = store.add("hf", [str(folder)]).version

    assert info.counts == {"target": {"train": 2, "validation": 1}}


def test_concurrent_adds_of_one_name_never_share_a_number(store: DatasetStore, write_jsonl) -> None:
    paths = [write_jsonl(f"v{i}.jsonl", _rows(3, prefix=f"w{i}-")) for i in range(4)]
    paths += paths[:2]  # two of the contents are added twice, concurrently
    barrier = threading.Barrier(len(paths))
    results, failures = [], []

    def add(path: str) -> None:
        barrier.wait()
        try:
            results.append(store.add("raced", [path]))
        except Exception as error:  # pragma: no cover - reported below
            failures.append(error)

    threads = [threading.Thread(target=add, args=(path,)) for path in paths]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert not failures
    versions = store.versions("raced")
    assert sorted(v.number for v in versions) == [1, 2, 3, 4]
    assert len({v.content_hash for v in versions}) == 4
    assert sum(result.created for result in results) == 4


def test_a_non_local_fsspec_artifact_root_round_trips(tmp_path: Path, database_url: str, write_jsonl) -> None:
    import fsspec

    from evalgate.core.settings import Settings

    root = f"memory://evalgate-{tmp_path.name}"
    remote = DatasetStore.from_settings(
        Settings(home=tmp_path / "h", database_url=database_url, artifact_root=root)
    )

    info = remote.add("suite", [write_jsonl("a.jsonl", _rows(6))]).version

    assert info.storage_uri.startswith("memory://") and not (tmp_path / "h" / "artifacts").exists()
    assert len(remote.rows("suite@v1")) == 6
    memory = fsspec.filesystem("memory")
    split_file = f"{info.storage_uri}/{info.files['eval']['path']}"
    with memory.open(split_file, "wb") as handle:
        handle.write(b"not the stored bytes")
    with pytest.raises(DatasetIntegrityError, match="modified after it was stored"):
        remote.load("suite@v1")
