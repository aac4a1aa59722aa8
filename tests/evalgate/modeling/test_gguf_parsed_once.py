"""The embedded-model cache build parses its GGUF file once (``loading._gguf_parsed_once``) and skips the
random initialisation of weights it overwrites: the files it writes must be those of transformers alone."""

from __future__ import annotations

import contextlib
from pathlib import Path

import gguf
import pytest

from evalgate.modeling import loading


def test_the_fast_export_writes_the_files_of_transformers_alone(
    embedded_model_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(loading, "_gguf_parsed_once", contextlib.nullcontext)
    monkeypatch.setattr(loading, "no_init_weights", contextlib.nullcontext)
    plain = tmp_path / "plain"
    loading._export_embedded_model(loading.embedded_gguf_path(), plain)

    written = sorted(path.name for path in plain.iterdir())
    assert "model.safetensors" in written
    assert written == sorted(p.name for p in embedded_model_cache.iterdir() if p.name != loading.CACHE_MARKER)
    for name in written:
        assert (plain / name).read_bytes() == (embedded_model_cache / name).read_bytes(), name


def test_each_file_is_parsed_once_within_the_block_and_the_originals_come_back() -> None:
    reader, name_map = gguf.GGUFReader, gguf.get_tensor_name_map
    path = loading.embedded_gguf_path()
    with loading._gguf_parsed_once():
        assert gguf.GGUFReader(path) is gguf.GGUFReader(path)
        llama = gguf.MODEL_ARCH.LLAMA
        assert gguf.get_tensor_name_map(llama, 2) is gguf.get_tensor_name_map(llama, 2)
    assert (gguf.GGUFReader, gguf.get_tensor_name_map) == (reader, name_map)
    assert gguf.GGUFReader(path) is not gguf.GGUFReader(path)


def test_the_originals_come_back_when_the_block_fails() -> None:
    reader = gguf.GGUFReader
    with pytest.raises(RuntimeError), loading._gguf_parsed_once():
        raise RuntimeError("export failed")
    assert gguf.GGUFReader is reader
