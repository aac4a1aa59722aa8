"""How the CI job's tables name a candidate: its rate, or its trial when the sweep searched more."""

from __future__ import annotations

from evalgate.ci.result import CandidateResult, rate_label


def test_a_rate_only_trial_is_its_rate_and_a_searched_one_its_name() -> None:
    assert rate_label(CandidateResult("lr=0.0003", 1, 3e-4, "trained"), swept=True) == "0.0003"
    searched = CandidateResult("lr=0.0003 cosine r=4", 2, 3e-4, "trained")
    assert rate_label(searched, swept=True) == "lr=0.0003 cosine r=4"
    assert rate_label(CandidateResult("run-42", 3, 3e-4, "trained"), swept=False) == "run-42 (lr 0.0003)"
    assert rate_label(CandidateResult("run-43", 4, None, "trained"), swept=False) == "run-43"
