"""The log's repeat filter: a flood of one kind of line is cut to a few, and counted."""

from __future__ import annotations

import logging

import pytest

from model_service import logs


def _record(msg: str, *args: object, level: int = logging.WARNING) -> logging.LogRecord:
    return logging.LogRecord("model_service.x", level, __file__, 1, msg, args, None)


def test_repeats_are_held_back_and_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(logs.time, "monotonic", lambda: now[0])
    flt = logs.RepeatFilter(burst=3, window=60)
    passed = [flt.filter(_record("Client %s fell behind", i)) for i in range(100)]
    assert passed.count(True) == 3
    # Another kind of line is not affected.
    assert flt.filter(_record("Something else %s", 1))
    now[0] += 61
    later = _record("Client %s fell behind", 101)
    assert flt.filter(later)
    assert "97 more like this were not logged" in later.getMessage()
    assert later.getMessage().startswith("Client 101 fell behind")


def test_levels_are_separate_kinds() -> None:
    flt = logs.RepeatFilter(burst=1, window=60)
    assert flt.filter(_record("x", level=logging.WARNING))
    assert flt.filter(_record("x", level=logging.ERROR))
    assert not flt.filter(_record("x", level=logging.ERROR))


def test_memory_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logs, "MAX_KEYS", 50)
    flt = logs.RepeatFilter()
    for i in range(500):
        flt.filter(_record(f"unique {i}"))
    assert len(flt._seen) == 50
