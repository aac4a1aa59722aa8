"""A real lm-evaluation-harness run of the tiny model, offline, written as ``lm_eval --output_path
--log_samples`` writes it (not a test file).

    python -m tests.support.lm_eval_run TINY_LM_DIR WORK_DIR    # from the repository root

Saves a random LoRA adapter of the tiny model in WORK_DIR/adapter (``write_adapter``) and two local
tasks under WORK_DIR/tasks (JSONL data, ``dataset_path: json``): ``tiny_mc`` (multiple choice, ``acc``
and ``acc_norm``, ``MC_DOCS`` documents) and ``tiny_qa`` (``generate_until`` with ``exact_match``,
``QA_DOCS`` documents, 4 new tokens); then evaluates the base model into WORK_DIR/out/base and the base
model with the adapter into WORK_DIR/out/candidate through ``lm_eval.simple_evaluate`` and lm-eval's
own ``EvaluationTracker`` save functions. Run it in a subprocess with ``HF_DATASETS_OFFLINE=1`` and
``HF_HUB_OFFLINE=1``: nothing is downloaded.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

MC_DOCS = 20
QA_DOCS = 8
TASKS = ("tiny_mc", "tiny_qa")
WORDS = [
    "apples",
    "books",
    "pencils",
    "tickets",
    "chairs",
    "lamps",
    "cups",
    "shirts",
    "boxes",
    "keys",
    "Paris",
]
"""The answer choices: document i offers WORDS[i], WORDS[i + 3], WORDS[i + 6], WORDS[i + 9] (mod 11)."""
_CITIES = ["Paris", "Berlin", "Madrid", "Rome", "Lisbon", "Vienna", "Oslo", "Prague"]
_COUNTRIES = ["France", "Germany", "Spain", "Italy", "Portugal", "Austria", "Norway", "Czechia"]

MC_YAML = """task: tiny_mc
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
doc_to_choice: choices
doc_to_target: answer
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
  - metric: acc_norm
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
"""

QA_YAML = """task: tiny_qa
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: generate_until
doc_to_text: "What is the capital of {{{{country}}}}? The capital of {{{{country}}}} is"
doc_to_target: " {{{{city}}}}"
generation_kwargs:
  until: ["."]
  max_gen_toks: 4
  do_sample: false
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
    ignore_case: true
    ignore_punctuation: true
metadata:
  version: 2.0
"""


def write_tasks(folder: Path) -> Path:
    """The two task YAMLs and their JSONL data in ``folder``; returns ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    mc = []
    for i in range(MC_DOCS):
        choices = [WORDS[(i + 3 * k) % len(WORDS)] for k in range(4)]
        mc.append(
            {"question": f"Which of these did Ann buy on day {i}?", "choices": choices, "answer": i % 4}
        )
    qa = [{"country": c, "city": city} for c, city in zip(_COUNTRIES, _CITIES, strict=True)][:QA_DOCS]
    for name, rows, template in (("tiny_mc", mc, MC_YAML), ("tiny_qa", qa, QA_YAML)):
        data = folder / f"{name}.jsonl"
        data.write_text("".join(json.dumps(row) + "\n" for row in rows))
        (folder / f"{name}.yaml").write_text(template.format(data=data))
    return folder


def run(pretrained: Path, adapter: Path | None, task_dir: Path, output_path: Path) -> dict[str, Any]:
    """Evaluate ``pretrained`` (with ``adapter`` when given) on the tasks; save results and samples the
    way ``lm_eval --output_path OUTPUT --log_samples`` does; returns the results (without samples)."""
    from lm_eval import simple_evaluate
    from lm_eval.loggers import EvaluationTracker
    from lm_eval.tasks import TaskManager

    model_args = f"pretrained={pretrained},dtype=float32"
    if adapter is not None:
        model_args += f",peft={adapter}"
    tracker = EvaluationTracker(output_path=str(output_path))
    results = simple_evaluate(
        model="hf",
        model_args=model_args,
        tasks=list(TASKS),
        device="cpu",
        batch_size=8,
        log_samples=True,
        evaluation_tracker=tracker,
        task_manager=TaskManager(include_path=str(task_dir), include_defaults=False),
        random_seed=0,
        numpy_random_seed=0,
        torch_random_seed=0,
        fewshot_random_seed=0,
    )
    assert results is not None
    samples = results.pop("samples")
    tracker.save_results_aggregated(results=results, samples=samples)
    for task_name in results["configs"]:
        tracker.save_results_samples(task_name=task_name, samples=samples[task_name])
    return results


def write_adapter(tiny_lm_dir: Path, folder: Path) -> Path:
    """A seeded random LoRA adapter (r=8, alpha=128, every attention and MLP projection) of the tiny
    model, saved with ``save_pretrained`` in ``folder``; returns ``folder``."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_lm_dir, dtype=torch.float32)
    torch.manual_seed(0)
    config = LoraConfig(
        r=8,
        lora_alpha=128,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        init_lora_weights=False,
    )
    get_peft_model(model, config).save_pretrained(folder)
    return folder


def main(tiny_lm_dir: str, work_dir: str) -> None:
    """The adapter, the tasks, and the base and candidate runs into ``work_dir``/out/{base,candidate}."""
    work = Path(work_dir)
    adapter = write_adapter(Path(tiny_lm_dir), work / "adapter")
    tasks = write_tasks(work / "tasks")
    run(Path(tiny_lm_dir), None, tasks, work / "out" / "base")
    run(Path(tiny_lm_dir), adapter, tasks, work / "out" / "candidate")


if __name__ == "__main__":
    main(*sys.argv[1:3])
