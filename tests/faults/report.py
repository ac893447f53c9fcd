"""The one table the fault suite prints: a row per run, in Markdown so the README can carry it as is."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

HEADER = (
    "| fault | events delivered (distinct; re-sent after 503) | lost | duplicated effects | wrong effects"
    " | time to settle |",
    "|---|---|---|---|---|---|",
)


def spelled(counter: Counter[str]) -> str:
    """``0``, or the total with its kinds: ``3 (2 events not processed, 1 emails never sent)``."""
    parts = [f"{n} {kind}" for kind, n in sorted(counter.items()) if n]
    total = sum(counter.values())
    return f"{total} ({', '.join(parts)})" if total else "0"


@dataclass
class Row:
    fault: str
    payments: int
    deliveries: int = 0
    distinct: int = 0
    resent: int = 0
    lost: Counter[str] = field(default_factory=Counter)
    duplicated: Counter[str] = field(default_factory=Counter)
    wrong: Counter[str] = field(default_factory=Counter)
    #: Seconds from the last delivery accepted (and the fault undone) to settled; None if it never settled.
    settled_in: float | None = None
    #: Seconds the whole run took (seeding, stream, settling, checks).
    took: float = 0.0
    notes: list[str] = field(default_factory=list)

    def line(self) -> str:
        events = f"{self.deliveries} ({self.distinct}; {self.resent})"
        settle = f"{self.settled_in:.1f} s" if self.settled_in is not None else "did not settle"
        cells = [self.fault, events, spelled(self.lost), spelled(self.duplicated), spelled(self.wrong), settle]
        return "| " + " | ".join(cells) + " |"


def table(rows: list[Row]) -> list[str]:
    """The table's lines, then one line of notes per run."""
    lines = [*HEADER, *(row.line() for row in rows)]
    notes = [f"- {row.fault}: {'; '.join(row.notes)} (run {row.took:.0f} s)" for row in rows]
    return [*lines, "", *notes]
