import pytest

from evalgate.evaluation import faithfulness_training
from evaluators import faithfulness_head, grounding


def test_head_weighs_every_grounding_feature_in_order():
    assert faithfulness_head.FEATURES == grounding.FEATURES
    assert len(faithfulness_head.WEIGHTS) == len(grounding.FEATURES)


def test_every_weight_lowers_support_so_a_grounded_claim_scores_highest():
    assert all(weight <= 0 for weight in faithfulness_head.WEIGHTS)


def test_perturbations_hold_both_labels_of_every_kind():
    examples = faithfulness_training.examples()
    kinds = {(e.kind, e.label) for e in examples}
    assert {label for _, label in kinds} == {0, 1}
    assert {"invented name", "number", "negated", "added clause"} <= {k for k, label in kinds if label == 0}


@pytest.mark.slow
def test_training_script_rebuilds_the_committed_head_byte_for_byte():
    source, *_ = faithfulness_training.build()
    assert source == faithfulness_training.HEAD_MODULE.read_text()
