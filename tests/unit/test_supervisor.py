"""make run restarts a part that died, with a back-off that grows while it keeps dying.

The local stack: README.md#what-make-run-starts.
"""

from __future__ import annotations

from typing import Any, cast

from devstack.stack import Stack
from devstack.supervisor import MAX_BACKOFF, STABLE_AFTER, Supervisor


class DeadChild:
    proc = None

    def log_tail(self, lines: int = 30) -> str:
        return "(log)"


class FlakyStack:
    """A stack whose ``worker`` is dead until restarted; ``fail_restarts`` restarts die while starting."""

    def __init__(self, fail_restarts: int = 0) -> None:
        self.children: dict[str, Any] = {"worker": DeadChild()}
        self.dead = {"worker"}
        self.fail_restarts = fail_restarts
        self.restarted_at: list[float] = []
        self.now = 0.0

    def dead_parts(self) -> list[str]:
        return sorted(self.dead)

    def restart_part(self, name: str) -> None:
        self.restarted_at.append(self.now)
        if self.fail_restarts:
            self.fail_restarts -= 1
            raise RuntimeError("worker exited before worker boot was ready:\n...")
        self.dead.discard(name)


def run(stack: FlakyStack, until: float) -> Supervisor:
    supervisor = Supervisor(cast(Stack, stack), clock=lambda: stack.now)
    while stack.now <= until:
        supervisor.tick()
        stack.now += 0.5
    return supervisor


def test_a_dead_part_is_restarted_after_a_second() -> None:
    """The first restart comes after the first back-off, and the part is up again."""
    stack = FlakyStack()
    assert run(stack, until=5).restarts == 1
    assert stack.restarted_at == [1.0] and stack.dead == set()


def test_a_part_that_keeps_dying_is_tried_less_and_less_often() -> None:
    """Each failed restart doubles the wait, up to the cap; the stack itself never gives up."""
    stack = FlakyStack(fail_restarts=8)
    run(stack, until=200)
    gaps = [b - a for a, b in zip(stack.restarted_at, stack.restarted_at[1:], strict=False)]
    assert gaps[:4] == [2.0, 4.0, 8.0, 16.0] and max(gaps) <= MAX_BACKOFF
    assert stack.dead == set()


def test_a_part_that_stayed_up_starts_again_from_the_first_back_off() -> None:
    """A death long after the last restart is treated as new: restarted after one second again."""
    stack = FlakyStack(fail_restarts=3)
    supervisor = run(stack, until=40)
    stack.now += STABLE_AFTER
    stack.dead.add("worker")
    died = stack.now
    while stack.now <= died + 2:
        supervisor.tick()
        stack.now += 0.5
    assert stack.restarted_at[-1] == died + 1.0
