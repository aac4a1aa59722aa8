"""Signals stored beside evaluator scores but computed from the loaded models rather than from answers.

Light on purpose (no torch): the gate, the REST service and config validation name them without
loading a model. ``evalgate.evaluation.forgetting`` computes them.
"""

from __future__ import annotations

OOD_KL = "ood_kl"
"""Per out-of-domain row, mean per-token KL(base || candidate) in nats (lower is better, base = 0)."""
OOD_KL_VERSION = "1"
OOD_KL_THRESHOLD = 0.1
"""A row passes when its mean per-token KL is at most this many nats (a loose marker, not the gate)."""

PSEUDO_EVALUATORS = (OOD_KL,)
"""Names accepted wherever evaluator names are, though no registered evaluator has them."""
