"""Builders and test doubles shared by the test modules (no tests here); a test imports helpers from
these modules, never from another test module.

- ``tiny_lm``: ``build_tiny_lm``, a tiny random Llama with an offline-trained tokenizer.
- ``adapters``: the tiny model with seeded weight noise (``load_perturbed``), two random LoRA
  adapters on its last layer (``top_layer_adapters``), the prompts ``ROWS`` they answer, and a
  stand-in adapter folder on disk (``make_adapter``).
- ``tiny_sweep``: ``tiny_sweep_config`` (seconds per candidate) and its training rows ``train_rows``.
- ``fakes``: ``BagOfWordsEmbedder``, a deterministic embedder without a model.
- ``scored_runs``: ``add_run`` and ``add_candidate``, finished runs with chosen per-row scores.
- ``sweep_data``: ``seed_weekly_sweep``, a realistic weekly sweep written straight to the database.
- ``ci_synthetic``: ``synthetic_result``, a CI result decided by the real gate from hand-made scores.
- ``held_calls``: ``HeldCall``, which counts a callable's calls and holds a chosen one (a training
  step, a generation batch) until released, and ``wait_until``, a poll with a deadline.
- ``counted_worker/``: a ``sitecustomize`` that makes a worker process log its optimizer steps to a
  file (and slows them as ``tests/slow_worker`` does).
"""
