"""The sweep on the embedded SmolLM2-135M-Instruct and the bundled suite: a real learning-rate spread."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest
import torch
from peft import PeftModel

from evalgate.core.paths import BUNDLED_SUITE_DIR
from evalgate.core.settings import Settings
from evalgate.data.store import DatasetStore
from evalgate.modeling.loading import EMBEDDED_DEFAULT_MODEL, load_model
from evalgate.modeling.prompting import render_prompt
from evalgate.sweep.config import SweepConfig
from evalgate.sweep.run import run_sweep

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)]


def test_small_rate_learns_and_large_rate_diverges_on_the_real_model(
    settings_with_embedded_model: Settings, store: DatasetStore
) -> None:
    settings = settings_with_embedded_model
    version = store.add("evalgate-suite", sorted(str(p) for p in BUNDLED_SUITE_DIR.glob("*.jsonl"))).version
    config = SweepConfig.from_dict(
        {
            "dataset": version.label,
            "learning_rates": [3e-4, 3e-2],
            "max_steps": 10,
            "batch_size": 4,
            "max_seq_length": 192,
            "seed": 0,
        }
    )

    result = run_sweep(config, settings, show_progress=False)

    learned, wild = result.candidates
    losses = learned["training"]["loss"]
    assert learned["status"] == "trained" and sum(losses[-3:]) < sum(losses[:3])
    assert wild["status"] == "diverged" and wild["training"]["stopped_early"]
    base, tokenizer = load_model(EMBEDDED_DEFAULT_MODEL, settings.home)
    tokenizer.padding_side = "left"
    row = store.load(version.label)["eval"].filter(lambda r: r["cohort"] == "target")[0]
    prompt = tokenizer(render_prompt(tokenizer, row), return_tensors="pt")

    def answer(model: Any) -> str:
        with torch.no_grad():
            out = cast(Any, model).generate(**prompt, max_new_tokens=40, do_sample=False)
        return str(tokenizer.decode(out[0, prompt["input_ids"].shape[1] :], skip_special_tokens=True))

    before = answer(base)
    after = answer(PeftModel.from_pretrained(base, learned["adapter_uri"]))
    assert after != before
    assert Path(learned["adapter_uri"], "adapter_config.json").is_file()
