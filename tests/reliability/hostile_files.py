"""Hypothesis strategies for hostile dataset files: JSONL, CSV and Parquet, broken in many ways.

``hostile_files()`` draws ``(suffix, bytes, recipe)``: the file's suffix, its content and a short
description of how it was made (shown when a case breaks the importer's contract). Files are often
valid enough to reach the row checks, so the fuzz reaches past the first parse error.
"""

from __future__ import annotations

import csv
import datetime
import decimal
import io
import json
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import strategies as st

HostileFile = tuple[str, bytes, str]
COLUMNS = [
    "id",
    "question",
    "input",
    "prompt",
    "context",
    "reference",
    "expected",
    "cohort",
    "split",
    "json_schema",
    "metadata",
    "extra",
    "",
    "id ",
]
IDS = st.one_of(st.sampled_from(["a", "b", "c", "a "]), st.text(max_size=6))
"""Few distinct ids, so duplicates are common."""
HUGE = st.integers(min_value=-(2**200), max_value=2**200)
JUNK_JSON = st.recursive(
    st.none() | st.booleans() | HUGE | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
"""Nested junk: any JSON value, NaN and Infinity included."""
WORDS = st.text(alphabet="abcdefghij XYZ-?", min_size=1, max_size=12).filter(str.strip)
VALID_ROWS = st.lists(WORDS, max_size=6).map(
    lambda questions: [{"id": f"r{i}", "question": q} for i, q in enumerate(questions)]
)
"""Well-formed rows with distinct ids: the part of a file that is fine."""
CELL = st.one_of(
    st.text(max_size=20),
    st.sampled_from(
        [
            "target",
            "ood",
            "Bad Cohort!",
            "train",
            "holdout",
            "{}",
            '{"a": [1]}',
            "[1]",
            "{",
            '{"type": "not-a-type"}',
            "NaN",
            "",
            " ",
        ]
    ),
    HUGE.map(str),
)


def _row() -> st.SearchStrategy[dict[str, Any]]:
    """A record: usually id and question present, any other column, values of any JSON type."""
    required = st.fixed_dictionaries(
        {"id": IDS | JUNK_JSON, "question": st.text(min_size=1, max_size=12) | JUNK_JSON}
    )
    extra = st.dictionaries(st.sampled_from(COLUMNS), JUNK_JSON | CELL, max_size=4)
    partial = st.dictionaries(st.sampled_from(COLUMNS), JUNK_JSON | CELL, max_size=5)
    return st.one_of(st.builds(lambda a, b: {**a, **b}, required, extra), partial)


def _jsonl_line() -> st.SearchStrategy[bytes]:
    """One line: a record, a non-object, junk text or bytes, deep nesting, a huge integer, a surrogate."""
    return st.one_of(
        _row().map(lambda row: json.dumps(row).encode()),
        _row().map(lambda row: json.dumps(row, ensure_ascii=False).encode("utf-8", "surrogatepass")),
        JUNK_JSON.map(lambda value: json.dumps(value).encode()),
        st.text(max_size=30).map(str.encode),
        st.binary(max_size=20),
        st.integers(min_value=900, max_value=3000).map(lambda depth: b"[" * depth + b"]" * depth),
        st.just(b'{"id": "d", "question": "q", "n": ' + b"9" * 5000 + b"}"),
        st.just(b'{"id": "s", "question": "\\ud800"}'),
        st.just(b'{"id": "k", "question": "q", "\\udfff": 1}'),
        st.just(b""),
    )


@st.composite
def jsonl_files(draw: st.DrawFn) -> HostileFile:
    """JSONL: good lines with a few hostile ones among them, newline style, maybe mangled."""
    lines = [json.dumps(row).encode() for row in draw(VALID_ROWS)]
    for line in draw(st.lists(_jsonl_line(), max_size=3)):
        lines.insert(draw(st.integers(min_value=0, max_value=len(lines))), line)
    data = draw(st.sampled_from([b"\n", b"\r\n"])).join(lines)
    data, how = draw(_mangled(data))
    return ".jsonl", data, f"{len(lines)} lines, {how}"


@st.composite
def csv_files(draw: st.DrawFn) -> HostileFile:
    """CSV: a header of any columns (maybe missing or repeating some), rows of any width."""
    header = draw(st.lists(st.sampled_from(COLUMNS), min_size=0, max_size=4))
    header = draw(st.sampled_from([["id", "question", *header], header]))
    rows = [[row["id"], row["question"], *[""] * (len(header) - 2)] for row in draw(VALID_ROWS)]
    for row in draw(st.lists(st.lists(CELL, max_size=len(header) + 2), max_size=3)):
        rows.insert(draw(st.integers(min_value=0, max_value=len(rows))), row)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    data = buffer.getvalue().encode("utf-8", "surrogatepass")
    data, how = draw(_mangled(data))
    return ".csv", data, f"header {header}, {len(rows)} rows, {how}"


def _mangled(data: bytes) -> st.SearchStrategy[tuple[bytes, str]]:
    """The bytes as they are, truncated, with junk spliced in, BOM-prefixed or re-encoded."""

    def splice(at: int, junk: bytes) -> tuple[bytes, str]:
        cut = at % (len(data) + 1)
        return data[:cut] + junk + data[cut:], f"{junk!r} spliced at {cut}"

    def reencode(codec: str) -> tuple[bytes, str]:
        text = data.decode("utf-8", "replace")
        return text.encode(codec, "replace"), f"re-encoded as {codec}"

    return st.one_of(
        st.just((data, "as written")),
        st.just((data, "as written")),
        st.just((data, "as written")),
        st.integers(min_value=0, max_value=max(0, len(data) - 1)).map(
            lambda cut: (data[:cut], f"truncated at {cut}")
        ),
        st.builds(
            splice, st.integers(min_value=0), st.sampled_from([b"\xff", b"\x00", b'"', b"\xc3", b"\r"])
        ),
        st.just((b"\xef\xbb\xbf" + data, "UTF-8 BOM")),
        st.sampled_from(["utf-16", "latin-1", "cp1252"]).map(reencode),
    )


KINDS = (
    "string",
    "int64",
    "uint64",
    "float",
    "bool",
    "binary",
    "list",
    "struct",
    "timestamp",
    "date",
    "decimal",
    "null",
    "datetime",
)
COLUMN_KINDS = st.sampled_from(["string"] * len(KINDS) + list(KINDS))
"""Half the columns hold text: those are the ones that get past the types to the row checks."""


def _typed_column(kind: str, size: int) -> st.SearchStrategy[pa.Array]:
    """``size`` values of one Arrow type, the awkward ones included."""
    values: dict[str, Callable[[], st.SearchStrategy[pa.Array]]] = {
        "string": lambda: st.lists(st.none() | st.text(max_size=10) | IDS, min_size=size, max_size=size).map(
            pa.array
        ),
        "int64": lambda: st.lists(st.integers(-(2**63), 2**63 - 1), min_size=size, max_size=size).map(
            pa.array
        ),
        "uint64": lambda: st.lists(st.integers(0, 2**64 - 1), min_size=size, max_size=size).map(
            lambda xs: pa.array(xs, pa.uint64())
        ),
        "float": lambda: st.lists(st.floats(), min_size=size, max_size=size).map(pa.array),
        "bool": lambda: st.lists(st.booleans(), min_size=size, max_size=size).map(pa.array),
        "binary": lambda: st.lists(st.binary(max_size=6), min_size=size, max_size=size).map(pa.array),
        "list": lambda: st.lists(st.lists(st.text(max_size=4), max_size=3), min_size=size, max_size=size).map(
            pa.array
        ),
        "struct": lambda: st.lists(
            st.fixed_dictionaries({"a": st.integers(0, 9), "b": st.text(max_size=4)}),
            min_size=size,
            max_size=size,
        ).map(pa.array),
        "timestamp": lambda: st.lists(st.integers(-(2**62), 2**62), min_size=size, max_size=size).map(
            lambda xs: pa.array(xs, pa.timestamp("ms"))
        ),
        "date": lambda: st.lists(st.integers(-(2**31), 2**31 - 1), min_size=size, max_size=size).map(
            lambda xs: pa.array(xs, pa.date32())
        ),
        "decimal": lambda: st.lists(
            st.decimals(places=2, max_value=10**6, min_value=-(10**6), allow_nan=False, allow_infinity=False),
            min_size=size,
            max_size=size,
        ).map(lambda xs: pa.array([decimal.Decimal(x) for x in xs])),
        "null": lambda: st.just(pa.nulls(size)),
        "datetime": lambda: st.just(pa.array([datetime.datetime(2026, 1, 1)] * size)),
    }
    return values[kind]()


@st.composite
def parquet_files(draw: st.DrawFn) -> HostileFile:
    """Parquet: valid files with wrong schemas (types, missing, repeated columns), maybe corrupted."""
    good = draw(VALID_ROWS)
    size = len(good)
    names = draw(st.lists(st.sampled_from(COLUMNS[:12]), min_size=0, max_size=4))
    kinds = [draw(COLUMN_KINDS) for _ in names]
    arrays = [draw(_typed_column(kind, size)) for kind in kinds]
    if draw(st.booleans()):  # a usable id and question, beside the hostile columns
        names, kinds = ["id", "question", *names], ["good", "good", *kinds]
        arrays = [pa.array([row["id"] for row in good]), pa.array([row["question"] for row in good]), *arrays]
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_arrays(arrays, names=names), buffer)
    data = buffer.getvalue()
    how = draw(st.sampled_from(["as written", "truncated", "byte flipped"]))
    if how != "as written" and data:
        at = draw(st.integers(min_value=0, max_value=len(data) - 1))
        data = data[:at] if how == "truncated" else data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]
        how = f"{how} at {at}"
    schema = ", ".join(f"{name or '<empty>'}: {kind}" for name, kind in zip(names, kinds, strict=True))
    return ".parquet", data, f"{size} rows of ({schema}), {how}"


def hostile_files() -> st.SearchStrategy[HostileFile]:
    """Any of the three formats, equally often."""
    return st.one_of(jsonl_files(), csv_files(), parquet_files())


def _parquet(columns: dict[str, pa.Array]) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(pa.table(columns), buffer)
    return buffer.getvalue()


def regressions() -> list[HostileFile]:
    """Files that once made the importer raise something other than a ``DatasetInputError``."""
    deep = b"[" * 5000 + b"]" * 5000
    return [
        (".jsonl", b'{"id": "a", "question": "q", "x": ' + deep + b"}", "nesting deeper than json can parse"),
        (".jsonl", b'{"id": "a", "question": "q", "n": ' + b"9" * 5000 + b"}", "an integer of 5000 digits"),
        (".jsonl", b'{"id": "a", "question": "\\ud800"}', "a lone surrogate in a field"),
        (".jsonl", b'{"id": "a", "question": "q", "\\udfff": 1}', "a lone surrogate in a metadata key"),
        (
            ".csv",
            b'id,question,metadata\na,q,"' + b'{""a"":' * 3000 + b"1" + b"}" * 3000 + b'"\n',
            "deep metadata JSON",
        ),
        (
            ".jsonl",
            b'{"id": "a", "question": "q", "json_schema": ' + b'{"items":' * 800 + b"{}" + b"}" * 801,
            "deep schema",
        ),
        (
            ".parquet",
            _parquet({"id": ["a"], "question": ["q"], "t": pa.array([2**62], pa.timestamp("ms"))}),
            "a timestamp past year 9999",
        ),
        (
            ".parquet",
            _parquet({"id": ["a"], "question": ["q"], "d": pa.array([2**31 - 1], pa.date32())}),
            "a date past year 9999",
        ),
        (".parquet", _write_duplicated_columns(), "a column name given twice"),
        (
            ".parquet",
            _parquet({"id": ["a"], "question": ["q"], "zzzzzz": ["z"]}).replace(b"zzzzzz", b"\xffzzzzz"),
            "a column name that is not UTF-8",
        ),
    ]


def _write_duplicated_columns() -> bytes:
    buffer = io.BytesIO()
    table = pa.Table.from_arrays(
        [pa.array(["a"]), pa.array(["q"]), pa.array(["z"])], names=["id", "question", "question"]
    )
    pq.write_table(table, buffer)
    return buffer.getvalue()
