"""``evalgate datasets ...``: add, list, show, diff and export dataset versions."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from evalgate.cli.common import ready_settings
from evalgate.cli.json_output import (
    DatasetDetail,
    DatasetDiffJson,
    DatasetList,
    DatasetVersionJson,
    JsonOption,
    emit,
)
from evalgate.data.dataset_ops import EXPORT_FORMATS, diff_versions, export_version
from evalgate.data.store import DatasetStore, VersionInfo

app = typer.Typer(help="Versioned evaluation datasets.", no_args_is_help=True)
console = Console()
DIFF_PREVIEW = 20


def open_store() -> DatasetStore:
    """The default store, its database brought to the current schema where that is automatic."""

    return DatasetStore.from_settings(ready_settings())


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="Dataset name, e.g. my-suite.")],
    files: Annotated[
        list[str], typer.Argument(help="JSONL, CSV, Parquet files or saved HF dataset folders.")
    ],
    cohort: Annotated[str, typer.Option(help="Cohort of rows that carry none.")] = "target",
    split: Annotated[str, typer.Option(help="Split of rows that carry none.")] = "eval",
    description: Annotated[str, typer.Option(help="Dataset description (first version only).")] = "",
) -> None:
    """Import FILES as a new immutable version of NAME (identical content returns the existing one)."""
    result = open_store().add(name, files, cohort=cohort, split=split, description=description)
    verb = "added" if result.created else "unchanged: identical content is already"
    console.print(f"{verb} [bold]{result.version.label}[/] ({result.version.row_count} rows)")
    console.print(counts_table(result.version))


@app.command("list")
def list_datasets(as_json: JsonOption = False) -> None:
    """Every dataset version."""
    versions = open_store().versions()
    if as_json:
        emit(DatasetList(versions=[DatasetVersionJson.model_validate(version_data(v)) for v in versions]))
        return
    table = Table("version", "rows", "cohorts", "hash", "created")
    for info in versions:
        cohorts = ", ".join(f"{cohort} {sum(splits.values())}" for cohort, splits in info.counts.items())
        table.add_row(
            info.label, str(info.row_count), cohorts, info.content_hash[:12], f"{info.created_at:%F %T}"
        )
    console.print(table)


@app.command("show")
def show(ref: Annotated[str, typer.Argument(help="NAME or NAME@vN.")], as_json: JsonOption = False) -> None:
    """Metadata of one version: hash, files, row counts per cohort and split."""
    info = open_store().get(ref)
    if as_json:
        emit(DatasetDetail.model_validate(version_data(info)))
        return
    console.print(f"[bold]{info.label}[/]  sha256 {info.content_hash}")
    console.print(f"stored at {info.storage_uri}  created {info.created_at:%F %T}")
    console.print(
        "sources: " + ", ".join(f"{source['name']} ({source['rows']} rows)" for source in info.sources)
    )
    console.print(counts_table(info))


@app.command("diff")
def diff(
    old: Annotated[str, typer.Argument(help="NAME@vA")],
    new: Annotated[str, typer.Argument(help="NAME@vB")],
    as_json: JsonOption = False,
) -> None:
    """Rows added, removed and changed (by id) between two versions."""
    result = diff_versions(open_store(), old, new)
    if as_json:
        emit(DatasetDiffJson.model_validate(asdict(result)))
        return
    console.print(
        f"{result.old} -> {result.new}: {len(result.added)} added, {len(result.removed)} removed, "
        f"{len(result.changed)} changed, {result.unchanged} unchanged"
    )
    for label, ids in (("+", result.added), ("-", result.removed)):
        for row_id in ids[:DIFF_PREVIEW]:
            console.print(f"  {label} {row_id}", markup=False)
    for row_id, fields in list(result.changed.items())[:DIFF_PREVIEW]:
        console.print(f"  ~ {row_id}: {', '.join(fields)}", markup=False)


@app.command("export")
def export(
    ref: Annotated[str, typer.Argument(help="NAME or NAME@vN.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="File (jsonl) or folder (parquet, hf).")],
    fmt: Annotated[str, typer.Option("--format", help=f"One of {', '.join(EXPORT_FORMATS)}.")] = "jsonl",
) -> None:
    """Write a version's rows out (hash-verified first)."""
    path = export_version(open_store(), ref, output, fmt)
    console.print(f"exported {ref} to {path}")


@app.command("verify")
def verify(
    name: Annotated[
        str | None, typer.Argument(help="One dataset's versions (default: every dataset).")
    ] = None,
) -> None:
    """Re-hash every stored file against its recorded sha256 (after a restore, or on a schedule);
    exit 1 naming each missing or changed file."""
    problems = open_store().verify(name)
    for problem in problems:
        console.print(problem, markup=False)
    if problems:
        raise typer.Exit(1)
    console.print("every dataset file matches its recorded sha256")


def version_data(info: VersionInfo) -> dict[str, Any]:
    """A version's fields and label, from which its ``--json`` shapes take theirs."""
    return {**asdict(info), "label": info.label}


def counts_table(info: VersionInfo) -> Table:
    """Rows per cohort (rows of the table) and split (columns)."""
    splits = sorted({split for counts in info.counts.values() for split in counts})
    table = Table("cohort", *splits, "total", title=f"{info.label} rows")
    for cohort, counts in info.counts.items():
        cells = [str(counts.get(split, 0)) for split in splits]
        table.add_row(cohort, *cells, str(sum(counts.values())))
    return table
