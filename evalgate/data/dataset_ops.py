"""Comparing and exporting dataset versions (``evalgate datasets diff`` / ``export``)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from evalgate.data.store import DatasetStore, VersionRef
from evalgate.data.store_files import Row

EXPORT_FORMATS = ("jsonl", "parquet", "hf")


@dataclass(frozen=True)
class DatasetDiff:
    """Rows added, removed and changed (by id) from version ``old`` to version ``new``."""

    old: str
    new: str
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: dict[str, list[str]] = field(default_factory=dict)
    """Changed row id -> the fields whose values differ."""
    unchanged: int = 0

    @property
    def is_empty(self) -> bool:
        """True when the two versions hold the same rows."""
        return not (self.added or self.removed or self.changed)


def diff_versions(store: DatasetStore, old: VersionRef | str, new: VersionRef | str) -> DatasetDiff:
    """Compare two versions row by row, matching rows by id."""
    old_info, new_info = store.get(old), store.get(new)
    old_rows, new_rows = store.rows(old_info.label), store.rows(new_info.label)
    changed = {
        row_id: [name for name, value in row.items() if old_rows[row_id].get(name) != value]
        for row_id, row in sorted(new_rows.items())
        if row_id in old_rows and old_rows[row_id] != row
    }
    return DatasetDiff(
        old=old_info.label,
        new=new_info.label,
        added=sorted(new_rows.keys() - old_rows.keys()),
        removed=sorted(old_rows.keys() - new_rows.keys()),
        changed=changed,
        unchanged=len(new_rows.keys() & old_rows.keys()) - len(changed),
    )


def export_version(store: DatasetStore, ref: VersionRef | str, output: Path, fmt: str = "jsonl") -> Path:
    """Write a version out: one JSONL file (rows with their split), Parquet per split, or an HF folder.

    JSON-text fields (``json_schema``, ``metadata``) are written back as objects in JSONL, so an
    export re-imports to the same content hash.
    """
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; expected one of {', '.join(EXPORT_FORMATS)}")
    splits = store.load(ref)
    if fmt == "hf":
        splits.save_to_disk(str(output))
    elif fmt == "parquet":
        output.mkdir(parents=True, exist_ok=True)
        for split, table in splits.items():
            table.to_parquet(str(output / f"{split}.parquet"))
    else:
        output.parent.mkdir(parents=True, exist_ok=True)
        with output.open("w", encoding="utf-8") as handle:
            for table in splits.values():
                for row in table:
                    handle.write(json.dumps(_as_json_row(row), ensure_ascii=False, sort_keys=True) + "\n")
    return output


def _as_json_row(row: Row) -> dict[str, object]:
    decoded: dict[str, object] = dict(row)
    for name in ("json_schema", "metadata"):
        text = row.get(name)
        decoded[name] = json.loads(text) if text else None
    return decoded
