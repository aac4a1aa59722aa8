"""Layers below the lowest adapted one run once for every model of a stacked pass, with the same answers."""

from __future__ import annotations

from pathlib import Path

from evalgate.modeling.generation import DecodingSettings, generate_per_adapter
from evalgate.modeling.shared_layers import common_prefix_length, decoder_layers, lowest_layer_holding
from evalgate.modeling.stacked_generation import adapted_modules, generate_mixed_adapters
from tests.support.adapters import ROWS, top_layer_adapters

DECODING = DecodingSettings(max_new_tokens=12, batch_size=4)  # batches of 4 rows and of 1 row


def test_the_lowest_adapted_layer_is_found_through_the_peft_wrapper(tiny_lm_dir: Path) -> None:
    model, _ = top_layer_adapters(tiny_lm_dir)
    layers = decoder_layers(model)

    assert layers is not None and len(layers) == 2
    assert lowest_layer_holding(layers, adapted_modules(model)) == 1
    assert lowest_layer_holding(layers, []) is None


def test_stacked_answers_with_shared_lower_layers_are_the_loops(tiny_lm_dir: Path) -> None:
    model, tokenizer = top_layer_adapters(tiny_lm_dir)
    adapters: list[str | None] = [None, "noisy", "louder"]
    rows_seen: dict[int, list[int]] = {0: [], 1: []}  # rows each layer put out, per pass
    layers = decoder_layers(model)
    assert layers is not None
    handles = [
        layers[index].register_forward_hook(
            lambda _m, _args, output, index=index: rows_seen[index].append(
                (output[0] if isinstance(output, tuple) else output).shape[0]
            )
        )
        for index in (0, 1)
    ]
    try:
        mixed = generate_mixed_adapters(model, tokenizer, ROWS, adapters, DECODING)
    finally:
        for handle in handles:
            handle.remove()

    assert mixed == generate_per_adapter(model, tokenizer, ROWS, adapters, DECODING)
    assert mixed["noisy"] != mixed[None] != mixed["louder"]
    # the first batch's prompt pass: the prefix every prompt shares as one row (the lower layer once,
    # the adapted one per model), then its 4 rows (the lower layer once, the adapted one per model)
    assert rows_seen[0][:2] == [1, 4] and rows_seen[1][:2] == [3, 12]
    assert 1 in rows_seen[0] and 3 in rows_seen[1]


def test_common_prefix_length_leaves_the_shortest_sequence_a_token() -> None:
    assert common_prefix_length([[1, 2, 3, 4], [1, 2, 3, 9], [1, 2, 3, 4, 5]]) == 3
    assert common_prefix_length([[1, 2, 3], [1, 2, 3, 4]]) == 2  # keep one of [1, 2, 3]
    assert common_prefix_length([[1, 2], [7, 2]]) == 0
    assert common_prefix_length([[1, 2, 3]]) == 0  # one sequence: nothing shared
