"""Time by stage: stages add up, nest by name, and survive an exception."""

from __future__ import annotations

import time

import pytest

from evalgate.core.timings import Timings, format_timings


def test_stages_add_up_in_the_order_first_entered_and_count_when_they_raise() -> None:
    timings = Timings()
    with timings.stage("evaluation"):
        with timings.stage("evaluation: scoring"), timings.stage("evaluation: scoring: faithfulness"):
            time.sleep(0.02)
        with pytest.raises(RuntimeError), timings.stage("evaluation: scoring: faithfulness"):
            time.sleep(0.02)
            raise RuntimeError("scorer crashed")

    seconds = timings.snapshot()

    assert list(seconds) == ["evaluation", "evaluation: scoring", "evaluation: scoring: faithfulness"]
    assert seconds["evaluation: scoring: faithfulness"] >= 0.04
    assert seconds["evaluation"] >= seconds["evaluation: scoring: faithfulness"]


def test_format_indents_nested_stages_and_prints_minutes() -> None:
    lines = format_timings({"sweep": 234.4, "sweep: training": 200.0, "gate": 1.25})

    assert lines[0].split() == ["sweep", "3", "min", "54", "s"]
    assert lines[1].startswith("    training")
    assert lines[2].split() == ["gate", "1.2", "s"]
