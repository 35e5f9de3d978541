"""Event clocks a bad producer cannot move, and state keys another tenant cannot reach."""
from __future__ import annotations

from streams.domain.clock import Clock, clock_key, is_clock_key
from streams.domain.keys import split_key, state_key

WALL = 1_800_000_000_000


def test_an_event_ahead_of_the_wall_clock_moves_the_clock_only_to_now() -> None:
    wall = [WALL]
    c = Clock(wall_ms=lambda: wall[0])
    c.observe(WALL - 60_000)
    assert c.now_ms() == WALL - 60_000
    c.observe(WALL + 20 * 3_600_000)  # a producer 20 h ahead
    assert c.watermark_ms == WALL and c.now_ms() == WALL
    wall[0] += 5_000
    assert c.now_ms() == WALL + 5_000  # and on with the wall clock, never to the producer's


def test_the_clock_never_goes_backwards_and_moves_on_with_wall_time_when_quiet() -> None:
    wall = [WALL]
    c = Clock(wall_ms=lambda: wall[0])
    c.observe(WALL - 3_600_000)  # a replay of an hour ago
    c.observe(WALL - 7_200_000)  # an older event
    assert c.watermark_ms == WALL - 3_600_000
    wall[0] += 90_000
    assert c.now_ms() == WALL - 3_600_000 + 90_000
    assert Clock(wall_ms=lambda: WALL).now_ms() == 0  # nothing seen yet


def test_clock_keys_cannot_be_an_interaction_key() -> None:
    assert is_clock_key(clock_key(3)) and not is_clock_key(state_key("acme", b"x"))
    assert clock_key(3) != clock_key(13)


def test_state_keys_carry_the_tenant_and_read_back() -> None:
    assert state_key("acme", b"c-1") != state_key("globex", b"c-1")
    assert split_key(state_key("acme", b"c-1")) == ("acme", "c-1")
    assert split_key(b"c-1") == (None, "c-1")  # a key of a release before tenant keys
