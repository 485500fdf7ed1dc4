"""The resume logic on its own: plain data in, verdicts out (no Home Assistant)."""

from __future__ import annotations

import pytest

from custom_components.midasheng.resume import ResumeState, Verdict


def test_start_end_and_repeats() -> None:
    state = ResumeState()
    assert state.judge(5, 5, ongoing=True) is Verdict.NEW
    assert state.open_seqs == {5}
    assert state.judge(5, 5, ongoing=True) is Verdict.REPEAT  # the same start again
    assert state.judge(5, 7, ongoing=False) is Verdict.CHANGE  # its end
    assert state.open_seqs == set()
    assert state.judge(5, 7, ongoing=False) is Verdict.REPEAT
    assert state.judge(5, 6, ongoing=False) is Verdict.REPEAT  # an older rev of it
    assert state.last_seq == 7


def test_events_ending_out_of_order() -> None:
    """Replays are ordered by rev, so a later start can come before an earlier end."""
    state = ResumeState()
    assert state.judge(1, 1, ongoing=True) is Verdict.NEW
    assert state.judge(2, 2, ongoing=True) is Verdict.NEW
    assert state.judge(2, 3, ongoing=False) is Verdict.CHANGE
    assert state.judge(1, 4, ongoing=False) is Verdict.CHANGE
    # An event that started and ended while we were away arrives whole: new.
    assert state.judge(6, 8, ongoing=False) is Verdict.NEW
    assert state.resume_after() == 8


def test_memory_is_bounded_and_the_floor_keeps_old_events_delivered() -> None:
    state = ResumeState(max_seen=3)
    state.judge(10, 10, ongoing=True)
    for seq in range(11, 16):
        state.judge(seq, seq, ongoing=False)
    assert sorted(state.seen) == [10, 14, 15]  # the open one stays
    assert state.floor == 13
    assert state.judge(12, 12, ongoing=False) is Verdict.REPEAT  # forgotten, still delivered
    assert state.judge(10, 16, ongoing=False) is Verdict.CHANGE


def test_first_subscription_sets_the_floor() -> None:
    """Events that started before the first subscription are not delivered as new."""
    state = ResumeState()
    assert state.subscribed(40, resumed_from=None, replayed=()) == (False, set())
    assert (state.last_seq, state.floor) == (40, 40)
    assert state.judge(39, 41, ongoing=False) is Verdict.REPEAT
    assert state.judge(42, 42, ongoing=True) is Verdict.NEW


def test_open_events_missing_from_the_replay_are_gone() -> None:
    state = ResumeState()
    state.subscribed(10, resumed_from=None, replayed=())
    state.judge(11, 11, ongoing=True)
    state.judge(12, 12, ongoing=True)
    after = state.resume_after()
    assert after == 12
    # Resumed from 10 instead (a saved cursor from before 11 and 12 started): 12 came back
    # in the replay, 11 did not and is gone from the service's log.
    assert state.subscribed(12, resumed_from=10, replayed={12}) == (False, {11})
    assert state.open_seqs == {12}


def test_a_restarted_service_log_is_followed() -> None:
    state = ResumeState()
    state.subscribed(100, resumed_from=None, replayed=())
    state.judge(101, 101, ongoing=True)
    restarted, gone = state.subscribed(3, resumed_from=101, replayed=())
    assert restarted and gone == {101}
    assert (state.last_seq, state.floor, state.seen, state.open_seqs) == (3, 3, {}, set())
    assert state.judge(4, 4, ongoing=True) is Verdict.NEW


def test_saved_and_restored() -> None:
    state = ResumeState(max_seen=50)
    state.subscribed(1, resumed_from=None, replayed=())
    state.judge(2, 2, ongoing=True)
    state.judge(3, 4, ongoing=False)
    saved = state.as_dict()
    assert saved == {"last_seq": 4, "open_seqs": [2], "seen": [[2, 2], [3, 4]], "floor": 1}
    assert ResumeState.from_dict(saved, max_seen=50) == state
    for damaged in ({"open_seqs": ["x"]}, {"seen": [[1]]}, {"last_seq": "a"}):
        with pytest.raises((ValueError, TypeError, KeyError)):
            ResumeState.from_dict(damaged)
