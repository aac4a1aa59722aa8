"""Self-distilled replay: train on the base model's own answers to general prompts.

With ``self_replay: [replay]`` in a sweep config, the train rows of those cohorts get, as their
reference, the base model's own greedy answer (generated once, before training, with the prompt
rendering training uses). Training on them pulls each candidate towards what the base model already
does on such prompts, in its own words, so the target task is learnt with less drift elsewhere; a
hand-written reference in another style would instead teach that style everywhere. Answers that do
not end within ``SELF_REPLAY_MAX_NEW_TOKENS`` are dropped: cut short, they would teach the model
to stop mid-sentence.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from evalgate.modeling.decoding import DecodingSettings
from evalgate.modeling.generation import generate_answers
from evalgate.sweep.training.peft_trainer import TrainingInputError

SELF_REPLAY_MAX_NEW_TOKENS = 96
SELF_REPLAY_BATCH_SIZE = 128
"""Rows answered together. One model decoding a few rows at a time is bound by per-step overhead, not
by arithmetic: the bundled suite's 80 replay rows took 70.7 s in batches of 16 and 20.8 to 27.6 s in
one batch of 80 (2-core AMD EPYC, fp32, identical answers). The KV cache of 128 rows of ~250 tokens
is about 30 MB for the embedded model."""


def with_self_replay(
    base: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    rows: Sequence[Mapping[str, Any]],
    cohorts: Sequence[str],
) -> list[Mapping[str, Any]]:
    """``rows`` with each row of ``cohorts`` answered by ``base`` (unfinished answers dropped).

    Raises ``TrainingInputError`` naming a cohort that has no train rows.
    """
    chosen = [row for row in rows if row.get("cohort") in cohorts]
    empty = sorted(set(cohorts) - {row.get("cohort") for row in chosen})
    if empty:
        raise TrainingInputError(f"self_replay: no train rows in cohort(s) {empty}")
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        decoding = DecodingSettings(
            max_new_tokens=SELF_REPLAY_MAX_NEW_TOKENS, batch_size=SELF_REPLAY_BATCH_SIZE
        )
        with torch.inference_mode():
            answers = generate_answers(base, tokenizer, chosen, decoding)
    finally:
        tokenizer.padding_side = side
    replayed = {
        id(row): {**row, "reference": answer.text}
        for row, answer in zip(chosen, answers, strict=True)
        if answer.new_tokens < SELF_REPLAY_MAX_NEW_TOKENS and answer.text
    }
    return [
        replayed.get(id(row), row) for row in rows if row.get("cohort") not in cohorts or id(row) in replayed
    ]
