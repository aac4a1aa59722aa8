"""What several benchmarks share: the machine line, a random-weights copy of a model, shared data files.

Imports nothing that needs a database, so the GPU benchmarks run with torch, transformers and peft.
"""

from __future__ import annotations

import argparse
import platform
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

REPOSITORY_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA_DIR = REPOSITORY_ROOT.parent / "shared" / "data"
"""Data that lives beside the checkout, never in it: ``../shared/data`` from the repository root."""
HALUEVAL_QA_DEV = SHARED_DATA_DIR / "halueval_qa_dev.jsonl"
"""The HaluEval QA sample (400 rows) that the faithfulness and relevancy benchmarks read by default."""


def require_file(parser: argparse.ArgumentParser, path: Path, option: str) -> Path:
    """``path`` when it is a file; else exit through ``parser.error`` naming ``option`` and the path."""
    if not path.is_file():
        parser.error(
            f"{option} {path}: no such file (by default it is read from ../shared/data/ relative to the "
            f"repository root, {SHARED_DATA_DIR}; pass {option} PATH to read another copy)"
        )
    return path


def machine() -> str:
    """CPU, core count, GPU (if any) and library versions, for the record."""
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (
        f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, {gpu}, "
        f"torch {torch.__version__}"
    )


def random_init_copy(source: str, out_dir: Path, seed: int = 0) -> str:
    """A model folder with ``source``'s config and tokenizer and freshly initialised weights."""
    torch.manual_seed(seed)
    config = AutoConfig.from_pretrained(source)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.save_pretrained(out_dir)
    AutoTokenizer.from_pretrained(source).save_pretrained(out_dir)
    return str(out_dir)
