"""Experiment tracking: what the database holds (sweeps, candidates, evaluations, gate decisions,
promotions) mirrored into MLflow; the database stays the source of truth (``evalgate[mlflow]``)."""
