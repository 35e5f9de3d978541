"""The two guards of issue 23, without a broker: a commit never passes an unprocessed offset
(streams/kafka/inbox.py ``commit_hole``), and recovery never starts from an empty changelog
behind a commit (streams/kafka/recovery.py)."""
from __future__ import annotations

import asyncio
from collections import namedtuple
from typing import Any

import pytest

from streams.kafka.inbox import commit_hole
from streams.kafka.recovery import StateLost, confirm, lost_state

TP = namedtuple("TP", "topic partition")
CL, EV = "app-interactions-changelog", "events"
PAIRS = {CL: EV}


# -- the commit guard ---------------------------------------------------------------------------
def test_a_run_that_starts_at_the_expected_offset_may_be_committed() -> None:
    assert commit_hole(0, [0, 1, 2], []) is None
    assert commit_hole(500, [500, 501], []) is None  # log start 500: nothing before it exists


def test_a_run_after_a_hole_is_held_back_even_when_nothing_was_committed() -> None:
    # The failure of issue 23: the head of a never-committed partition was dropped, and
    # faust committed the first acknowledged run after it (its own check skips offset None/0).
    assert commit_hole(0, [1200, 1201, 1202], []) == (0, 1200)
    # faust's own check is one off: acked from committed+1 passed it.
    assert commit_hole(31, [32, 33], []) == (31, 32)


def test_a_hole_released_by_the_gap_filler_lets_the_commit_through() -> None:
    assert commit_hole(100, [400, 401], [100]) is None
    assert commit_hole(100, [400, 401], [250]) == (100, 250)


# -- recovery's changelog ends ------------------------------------------------------------------
def test_an_empty_changelog_behind_a_commit_is_lost_state() -> None:
    ends = {TP(CL, 0): 0, TP(CL, 1): 0, TP(CL, 2): 587, TP("other-changelog", 3): 0}
    committed = {(EV, 0): 1200, (EV, 1): None, (EV, 2): 900}
    starts = {(EV, 0): 0, (EV, 1): 0, (EV, 2): 0}
    lost = lost_state(ends, PAIRS, committed, starts)
    assert [(x.partition, x.committed) for x in lost] == [(0, 1200)]


def test_a_commit_at_the_log_start_is_no_processing() -> None:
    # Retention moved the events' start to 5000 and the group is committed there: nothing of
    # what is left was processed, so an empty changelog is right.
    assert lost_state({TP(CL, 0): 0}, PAIRS, {(EV, 0): 5000}, {(EV, 0): 5000}) == []
    assert lost_state({TP(CL, 0): 0}, PAIRS, {(EV, 0): 5001}, {(EV, 0): 5000}) != []


class Reads:
    """Recorded reads: committed offsets fixed, ends answering from a script."""

    def __init__(self, committed: dict[Any, int | None], ends: list[dict[Any, int]]) -> None:
        self.committed, self.ends, self.calls = committed, ends, 0

    async def sources(self, keys: list[tuple[str, int]]) -> tuple[dict[Any, int | None], dict[Any, int]]:
        return {k: self.committed.get(k) for k in keys}, {k: 0 for k in keys}

    async def read_ends(self, tps: list[Any]) -> dict[Any, int]:
        self.calls += 1
        return self.ends[min(self.calls - 1, len(self.ends) - 1)]


def test_confirm_reads_the_ends_again_and_takes_them_when_they_appear() -> None:
    reads = Reads({(EV, 0): 1200}, [{TP(CL, 0): 0}, {TP(CL, 0): 2535}])
    ends = asyncio.run(confirm({TP(CL, 0): 0, TP(CL, 1): 40}, PAIRS, reads.sources, reads.read_ends,
                               group="g", wait_s=0))
    assert ends == {TP(CL, 0): 2535, TP(CL, 1): 40}
    assert reads.calls == 2


def test_confirm_refuses_to_start_with_empty_state_and_says_what_to_do() -> None:
    reads = Reads({(EV, 0): 1200, (EV, 3): 7}, [{TP(CL, 0): 0, TP(CL, 3): 0}])
    with pytest.raises(StateLost) as e:
        asyncio.run(confirm({TP(CL, 0): 0, TP(CL, 3): 0}, PAIRS, reads.sources, reads.read_ends,
                            group="ccpulse", attempts=3, wait_s=0))
    assert reads.calls == 3
    text = str(e.value)
    assert f"{CL}[0] is empty, yet {EV}[0] is committed at offset 1,200" in text
    assert f"{CL}[3]" in text and "--reset-offsets --to-earliest" in text and "'ccpulse'" in text


def test_confirm_asks_nothing_when_every_changelog_has_records() -> None:
    reads = Reads({}, [])
    ends = {TP(CL, 0): 3, TP(CL, 1): 1}
    assert asyncio.run(confirm(ends, PAIRS, reads.sources, reads.read_ends, group="g")) == ends
    assert reads.calls == 0
