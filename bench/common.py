"""What several benchmarks share: the machine line and a random-weights copy of a model.

Imports nothing that needs a database, so the GPU benchmarks run with torch, transformers and peft.
"""

from __future__ import annotations

import platform
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer


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
