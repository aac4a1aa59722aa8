"""Dataset version files: content hashing, Parquet writing and hash-verified reading via fsspec.

A version's folder is addressed by its content hash, ``<root>/datasets/<name>/<content_hash>/``,
with one ``<split>.parquet`` per split, so writing the same content twice writes the same bytes to
the same place. Every read checks the file's sha256 against the one recorded in the database.
"""

from __future__ import annotations

import hashlib
import io
import json
import uuid
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import datasets
import fsspec
import pyarrow as pa

from evalgate.data.readers import read_parquet_in_this_thread
from evalgate.data.rows import FEATURES, FIELDS

Row = dict[str, str | None]


class DatasetIntegrityError(RuntimeError):
    """A stored dataset file is missing or its bytes no longer match the recorded sha256."""


def content_hash(rows: Iterable[Row]) -> str:
    """sha256 of the canonical rows: each as sorted-key JSON, sorted by id, joined by newlines."""
    digest = hashlib.sha256()
    for row in sorted(rows, key=lambda row: row["id"] or ""):
        digest.update(json.dumps(row, sort_keys=True, ensure_ascii=False).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def group_by_split(rows: Iterable[Row]) -> dict[str, list[Row]]:
    """Rows per split, each split sorted by id (the stored order)."""
    grouped: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        grouped[row["split"] or ""].append(row)
    return {split: sorted(items, key=lambda row: row["id"] or "") for split, items in sorted(grouped.items())}


def parquet_bytes(rows: list[Row]) -> bytes:
    """One split as Parquet bytes, written by HF ``datasets`` with the stored schema."""
    buffer = io.BytesIO()
    columns = {field: [row[field] for row in rows] for field in FIELDS}
    datasets.Dataset.from_dict(columns, features=FEATURES).to_parquet(buffer)
    return buffer.getvalue()


def write_version_files(folder: str, rows: list[Row]) -> dict[str, dict[str, Any]]:
    """Write one Parquet file per split under ``folder``; return ``{split: {path, sha256, rows}}``.

    Each file is written under a temporary name and then moved into place, so a reader never sees a
    half-written file, and two writers of the same content leave the same bytes.
    """
    fs, root = fsspec.core.url_to_fs(folder)
    fs.makedirs(root, exist_ok=True)
    files: dict[str, dict[str, Any]] = {}
    for split, split_rows in group_by_split(rows).items():
        data = parquet_bytes(split_rows)
        final = f"{root}/{split}.parquet"
        temporary = f"{final}.tmp-{uuid.uuid4().hex}"
        with fs.open(temporary, "wb") as handle:
            handle.write(data)
        fs.mv(temporary, final)
        files[split] = {
            "path": f"{split}.parquet",
            "sha256": hashlib.sha256(data).hexdigest(),
            "rows": len(split_rows),
        }
    return files


def read_verified_split(folder: str, entry: dict[str, Any]) -> pa.Table:
    """Read one split file, refusing it unless its sha256 matches ``entry['sha256']``."""
    url = f"{folder}/{entry['path']}"
    fs, path = fsspec.core.url_to_fs(url)
    if not fs.exists(path):
        raise DatasetIntegrityError(f"dataset file missing: {url} (recorded sha256 {entry['sha256']})")
    with fs.open(path, "rb") as handle:
        data: bytes = handle.read()
    actual = hashlib.sha256(data).hexdigest()
    if actual != entry["sha256"]:
        raise DatasetIntegrityError(
            f"dataset file {url} was modified after it was stored: "
            f"sha256 {actual} != recorded {entry['sha256']}"
        )
    return read_parquet_in_this_thread(data)


def remove_folder(folder: str) -> None:
    """Delete a version folder and everything in it, if it exists."""
    fs, path = fsspec.core.url_to_fs(folder)
    if fs.exists(path):
        fs.rm(path, recursive=True)
