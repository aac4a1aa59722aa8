"""Writing training artifacts (adapter folders, checkpoints) all or nothing, with a clear reason when
the disk is full.

    write_folder(run_dir / "adapter", "adapter lr=0.001", model.save_pretrained)
    write_file(run_dir / "fused-checkpoint.pt", "checkpoint", lambda path: torch.save(state, path))

Each artifact is written under a ``.partial`` name and moved into place only when complete, so a
reader (or the database) never sees half an adapter; a failed write removes what it left. Libraries
report a full disk in their own words (torch: ``unexpected pos 64 vs 0``; safetensors: an ``IoError``
string), so a failure is turned into ``ArtifactWriteError`` naming the path and, when the disk has
(almost) no space left, ``ENOSPC``, "No space left on device" and how much is free there.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from safetensors import SafetensorError

NEARLY_FULL_BYTES = 1024 * 1024
"""A write that fails with less than this free on its disk is reported as the disk being full."""


class ArtifactWriteError(OSError):
    """An artifact could not be written; the message names it, its path and the disk's free space."""


def free_bytes(path: Path) -> int:
    """Bytes an unprivileged writer may still use on the filesystem holding ``path`` (or its parent)."""
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    stats = os.statvfs(existing)
    return stats.f_bavail * stats.f_frsize


@contextmanager
def reported_writes(path: Path, what: str) -> Iterator[None]:
    """Raise ``ArtifactWriteError`` naming ``what`` and ``path`` when the block fails to write it: on
    any ``OSError``, and on a library's own error when the disk is (nearly) full."""
    try:
        yield
    except ArtifactWriteError:
        raise
    except (OSError, RuntimeError, SafetensorError) as error:
        code = error.errno if isinstance(error, OSError) else None
        free = free_bytes(path)
        if code is None and free >= NEARLY_FULL_BYTES:
            raise  # not a disk problem: the library's error stands as it is
        if code is None or code == errno.ENOSPC:
            code = errno.ENOSPC
            cause = f"No space left on device ({free} bytes free there)"
        else:
            cause = os.strerror(code)
        raise ArtifactWriteError(code, f"could not write {what} to {path}: {cause}: {error}") from error


def write_folder(folder: Path, what: str, save: Callable[[str], object]) -> None:
    """Have ``save`` fill ``folder`` (given as a string path) all or nothing: it writes into
    ``<folder>.partial``, which replaces ``folder`` once complete and is removed on failure."""
    partial = folder.with_name(f"{folder.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        with reported_writes(folder, what):
            folder.parent.mkdir(parents=True, exist_ok=True)
            save(str(partial))
            if folder.exists():
                shutil.rmtree(folder)
            os.replace(partial, folder)
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def write_file(path: Path, what: str, save: Callable[[Path], object]) -> None:
    """Have ``save`` write ``path`` all or nothing: into ``<path>.partial``, then renamed over ``path``."""
    partial = path.with_name(f"{path.name}.partial")
    try:
        with reported_writes(path, what):
            path.parent.mkdir(parents=True, exist_ok=True)
            save(partial)
            os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
