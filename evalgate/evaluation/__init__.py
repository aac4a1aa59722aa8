"""Evaluation runs: answers, per-row scores, aggregates with their intervals, the forgetting signal."""
