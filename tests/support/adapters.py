"""The tiny model with seeded weight noise, random LoRA adapters on it, and adapter folders on disk.

The randomly initialised tiny model answers every prompt with newlines; ``load_perturbed`` adds
N(0, 0.05²) noise (seed 0) to every weight so that answers differ from prompt to prompt.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig, get_peft_model

from evalgate.modeling.loading import load_model

ROWS: list[dict[str, Any]] = [
    {"id": "a", "question": "What is the capital of France?", "context": ""},
    {"id": "b", "question": "Extract the order.", "context": "Ann bought 3 apples at the market."},
    {"id": "c", "question": "Hi", "context": ""},
    {"id": "d", "question": "Return only valid JSON with the fields name and quantity.", "context": "Bob"},
    {"id": "e", "question": "The quick brown fox jumps over the lazy dog?", "context": ""},
]
"""Five prompts of different lengths, for generation with the perturbed tiny model."""


def load_perturbed(tiny_lm_dir: Path) -> tuple[Any, Any]:
    """The tiny model (fp32, left padding) with every weight w ← w + 0.05·ε, ε ~ N(0, 1) seeded with 0."""
    model, tokenizer = load_model(str(tiny_lm_dir), tiny_lm_dir, dtype=torch.float32)
    tokenizer.padding_side = "left"
    noise = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=noise) * 0.05)
    return model, tokenizer


def top_layer_adapters(tiny_lm_dir: Path) -> Any:
    """The perturbed tiny model with two random adapters on its last layer only: ``noisy`` (r=4,
    alpha=64) and ``louder`` (r=4, alpha=256), both on q_proj and v_proj; returns (peft model, tokenizer)."""
    model, tokenizer = load_perturbed(tiny_lm_dir)
    last = model.config.num_hidden_layers - 1
    torch.manual_seed(0)

    def lora(alpha: int) -> LoraConfig:
        return LoraConfig(
            r=4,
            lora_alpha=alpha,
            target_modules=["q_proj", "v_proj"],
            layers_to_transform=[last],
            init_lora_weights=False,
        )

    peft_model = get_peft_model(model, lora(64), adapter_name="noisy")
    peft_model.add_adapter("louder", lora(256))
    peft_model.eval()
    return peft_model, tokenizer


def make_adapter(folder: Path) -> Path:
    """A stand-in PEFT adapter folder at ``folder`` (created with its parents): a LoRA
    adapter_config.json and 16 zero bytes as adapter_model.safetensors; returns ``folder``."""
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 4}))
    (folder / "adapter_model.safetensors").write_bytes(b"\0" * 16)
    return folder
