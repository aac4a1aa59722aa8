"""The gate: the policy, the non-inferiority decision, the recommendation, and their records."""
