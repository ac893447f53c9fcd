"""The fault suite's one allowance: an email the SMTP server took just as the worker was killed,
sent again by the redelivery. Anything else sent twice still counts as duplicated."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.faults.checks import resent_across_a_kill

KILL = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return KILL + timedelta(seconds=seconds)


def test_only_two_copies_straddling_a_kill_that_fell_in_the_first_ones_hand_over_are_allowed() -> None:
    arrivals = {
        "handover": [at(-0.01), at(4)],  # taken just before the kill, sent again after it
        "sink-late": [at(0.2), at(4)],  # the sink stamped it just after the kill
        "three": [at(-0.01), at(4), at(5)],
        "long-before": [at(-5), at(4)],
        "both-after": [at(1.5), at(4)],
        "once": [at(-0.01)],
    }
    assert resent_across_a_kill(arrivals, [KILL]) == {"handover", "sink-late"}
    assert resent_across_a_kill(arrivals, []) == set()
