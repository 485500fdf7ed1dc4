"""Which events were delivered, and where the push connection resumes (plain Python, no I/O).

Every change to the service's event log has a `rev` from one growing counter; an event's
`seq` is the rev of its start, and the event is sent again with a larger rev when it ends.
Replays come ordered by rev, so events that end in another order than they started arrive
out of seq order; a message is judged by its event's own history:

- a seq not seen before is new (its start is delivered, and its end too when it has ended);
- a seq still open here may end;
- a rev no newer than the one handled for its seq, or the change of an event that already
  ended here, is a repeat from a resume and is dropped.

The seqs handled recently are remembered with their rev (at most `max_seen`, open ones
always); at or below `floor` every event counts as delivered. The cursor (`last_seq`, the
highest rev seen) resumes the subscription: the service replays every change after it,
among them the end of any event still open here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class Verdict(Enum):
    """What one event message means for what was delivered."""

    NEW = "new"  # a start not delivered before (maybe ended already)
    CHANGE = "change"  # the end of an event open here
    REPEAT = "repeat"  # already delivered in this form: drop it


@dataclass(slots=True)
class ResumeState:
    """The resume cursor and the delivery history of one service's event log."""

    max_seen: int = 1000
    last_seq: int | None = None
    open_seqs: set[int] = field(default_factory=set)
    seen: dict[int, int] = field(default_factory=dict)
    floor: int | None = None

    def judge(self, seq: int, rev: int, *, ongoing: bool) -> Verdict:
        """Judge one event message and record it (unless it is a repeat)."""
        handled = self.seen.get(seq)
        if handled is not None and rev <= handled:
            return Verdict.REPEAT
        if self.last_seq is None or rev > self.last_seq:
            self.last_seq = rev
        if seq in self.open_seqs:
            verdict = Verdict.CHANGE
        elif handled is not None or (self.floor is not None and seq <= self.floor):
            return Verdict.REPEAT  # it ended here already, or is older than what is remembered
        else:
            verdict = Verdict.NEW
        if ongoing:
            self.open_seqs.add(seq)
        else:
            self.open_seqs.discard(seq)
        self._remember(seq, rev)
        return verdict

    def _remember(self, seq: int, rev: int) -> None:
        self.seen[seq] = rev
        excess = len(self.seen) - self.max_seen
        # Forget the oldest events that have ended; the floor keeps them delivered.
        for old in sorted(self.seen):
            if excess <= 0:
                break
            if old in self.open_seqs:
                continue
            del self.seen[old]
            self.floor = old if self.floor is None else max(self.floor, old)
            excess -= 1

    def resume_after(self) -> int | None:
        """The `after` of the next subscription (None: from now on, no replay)."""
        return self.last_seq

    def subscribed(
        self, last_seq: int, *, resumed_from: int | None, replayed: Iterable[int]
    ) -> tuple[bool, set[int]]:
        """Apply a subscription's `subscribed`; (the log restarted, open seqs now gone).

        `replayed` are the seqs the subscription's replay brought. A service whose counter is
        behind ours lost its log (a new data folder): everything open here is gone and the
        history starts again. Otherwise an open event that started after the resume point
        but did not come back in the replay is no longer in the service's log.
        """
        restarted = self.last_seq is not None and last_seq < self.last_seq
        if restarted:
            gone = set(self.open_seqs)
            self.last_seq = self.floor = last_seq
            self.seen.clear()
        elif resumed_from is not None:
            gone = {seq for seq in self.open_seqs if seq > resumed_from} - set(replayed)
        else:
            gone = set()
        self.open_seqs -= gone
        self.last_seq = last_seq if self.last_seq is None else max(self.last_seq, last_seq)
        if self.floor is None:
            # First subscription: events that started before it are not delivered.
            self.floor = self.last_seq
        return restarted, gone

    def forget_open(self, seqs: Iterable[int]) -> None:
        """Open events that will never end here (their source was removed)."""
        self.open_seqs.difference_update(seqs)

    def as_dict(self) -> dict[str, Any]:
        """What is saved between runs."""
        return {
            "last_seq": self.last_seq,
            "open_seqs": sorted(self.open_seqs),
            "seen": [[seq, rev] for seq, rev in sorted(self.seen.items())],
            "floor": self.floor,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, max_seen: int = 1000) -> ResumeState:
        """Restore what `as_dict` saved; ValueError, TypeError or KeyError when unreadable."""
        return cls(
            max_seen=max_seen,
            last_seq=_optional_int(data.get("last_seq")),
            open_seqs={int(seq) for seq in data.get("open_seqs", ())},
            seen={int(seq): int(rev) for seq, rev in data.get("seen", ())},
            floor=_optional_int(data.get("floor")),
        )


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)
