"""Reading Parquet starts no Arrow pool thread: one alive at interpreter exit aborts the process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

# Counts the process's native threads before and after the read, in a fresh interpreter: Arrow's
# CPU pool is started once per process, by the first read that uses it.
_SCRIPT = """
import os, sys
from evalgate.data.readers import read_parquet_in_this_thread, read_records
from evalgate.data.store_files import read_verified_split
import hashlib
data = open(sys.argv[1], "rb").read()
before = len(os.listdir("/proc/self/task"))
table = read_parquet_in_this_thread(data)
entry = {"path": os.path.basename(sys.argv[1]), "sha256": hashlib.sha256(data).hexdigest()}
stored = read_verified_split(os.path.dirname(sys.argv[1]), entry)
uploaded = list(read_records(sys.argv[1], max_bytes=1 << 20))
print(table.num_rows, stored.num_rows, len(uploaded), len(os.listdir("/proc/self/task")) - before)
"""


def test_stored_splits_and_uploaded_files_are_decoded_without_a_thread_pool(tmp_path: Path) -> None:
    path = tmp_path / "rows.parquet"
    pq.write_table(pa.table({"id": [str(i) for i in range(500)], "question": ["q"] * 500}), path)

    found = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(path)], capture_output=True, text=True, timeout=120, check=True
    )

    assert found.stdout.split() == ["500", "500", "500", "0"]


def test_the_default_arrow_read_would_start_pool_threads(tmp_path: Path) -> None:
    """The check above can fail: Arrow's own default read starts its pool in a fresh process."""
    path = tmp_path / "rows.parquet"
    pq.write_table(pa.table({"id": ["a"] * 10, "question": ["q"] * 10}), path)
    script = (
        "import os, sys, pyarrow as pa, pyarrow.parquet as pq\n"
        "before = len(os.listdir('/proc/self/task'))\n"
        "pq.ParquetFile(pa.BufferReader(open(sys.argv[1], 'rb').read())).read()\n"
        "print(len(os.listdir('/proc/self/task')) - before)\n"
    )

    found = subprocess.run(
        [sys.executable, "-c", script, str(path)], capture_output=True, text=True, check=True
    )

    assert int(found.stdout) > 0
