"""A tiny, randomly initialised Llama-architecture causal LM for fast tests (not a test file).

    from tests.support.tiny_lm import build_tiny_lm
    build_tiny_lm(tmp_path / "tiny")   # then load_model(str(...))

It mirrors SmolLM2-135M-Instruct in shape, not in size: the same module names (q_proj, k_proj, v_proj,
o_proj, gate_proj, up_proj, down_proj), grouped-query attention, tied embeddings, the same special tokens
at the same ids (0 <|endoftext|>, 1 <|im_start|> = bos, 2 <|im_end|> = eos = pad) and a ChatML chat
template. The byte-level BPE tokenizer is trained offline on a small built-in corpus. Everything is seeded,
so two builds write identical files. Building takes well under a second.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

SEED = 1234
VOCAB_SIZE = 512
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
"""Special tokens at ids 0, 1, 2, as in SmolLM2."""

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
"""ChatML, the shape SmolLM2 uses (without SmolLM2's default system prompt)."""

_NAMES = ["Ann", "Bob", "Chen", "Dara", "Eve", "Farid", "Grace", "Hugo", "Ines", "Jon"]
_ITEMS = ["apples", "books", "pencils", "tickets", "chairs", "lamps", "cups", "shirts", "boxes", "keys"]
_CITIES = ["Paris", "Berlin", "Madrid", "Rome", "Lisbon", "Vienna", "Oslo", "Prague"]
_COUNTRIES = ["France", "Germany", "Spain", "Italy", "Portugal", "Austria", "Norway", "Czechia"]
_FACTS = [
    "The sun rises in the east and sets in the west.",
    "Water boils at one hundred degrees Celsius at sea level.",
    "A spider has eight legs and an insect has six.",
    "The quick brown fox jumps over the lazy dog.",
    "Plants turn sunlight, water and carbon dioxide into sugar and oxygen.",
    "Please answer the question in one short sentence.",
    "Return only valid JSON with the fields name and quantity.",
    "I cannot help with that request, but I can help with something else.",
]


def tiny_corpus() -> list[str]:
    """A deterministic corpus of a few hundred English sentences and JSON snippets."""
    lines = list(_FACTS)
    for i, (name, item) in enumerate(itertools.product(_NAMES, _ITEMS)):
        quantity = i % 9 + 1
        lines.append(f"{name} bought {quantity} {item} at the market.")
        lines.append(json.dumps({"name": name, "quantity": quantity}))
        lines.append(json.dumps({"name": name, "item": item, "quantity": quantity}, indent=2))
    for city, country in zip(_CITIES, _COUNTRIES, strict=True):
        lines.append(f"What is the capital of {country}? The capital of {country} is {city}.")
    return lines


def build_tokenizer() -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer on ``tiny_corpus`` and wrap it for transformers."""
    backend = Tokenizer(models.BPE(unk_token=None))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(tiny_corpus(), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token="<|endoftext|>",
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|im_end|>",
        chat_template=CHAT_TEMPLATE,
        model_max_length=512,
    )


def build_model(vocab_size: int) -> LlamaForCausalLM:
    """A seeded, randomly initialised 2-layer Llama (hidden 64, 4 heads, 2 KV heads, MLP 128)."""
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=2,
    )
    torch.manual_seed(SEED)
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(bos_token_id=1, eos_token_id=2, pad_token_id=2)
    return model.eval()


def build_tiny_lm(out_dir: Path) -> Path:
    """Write the tiny model and its tokenizer to ``out_dir`` with ``save_pretrained``; return ``out_dir``."""
    out_dir = Path(out_dir)
    tokenizer = build_tokenizer()
    model = build_model(len(tokenizer))
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir
