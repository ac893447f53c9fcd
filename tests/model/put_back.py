"""Put each money finding back, one at a time, and check that the payment model finds it.

``make put-back`` (or ``python -m tests.model.put_back [NAME ...]``): for every mutant below,
a copy of the tracked files with that one finding's fix undone (the old behaviour restored, in
every layer the fix touched), and the model test run on it with ``make test``'s settings. A
mutant the model does not find fails the run, unless it says why the model cannot see it (a
guard it leaves standing, or a part of the world the model does not have); those are reported.
A mutant whose code no longer matches fails too: it must follow the code it reverts. What the
model found by itself (beyond the issue's findings) also counts as found when the search misses it
but the example kept from that finding fails, and the run says which.
docs/model-test.md lists the findings and what the last run said.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Mutant:
    name: str
    #: ``(path, the code as it is, the code as it was)``, each ``as it is`` found exactly once.
    edits: tuple[tuple[str, str, str], ...]
    #: Why the model cannot find it, where it cannot (None: it must).
    hidden: str | None = None
    #: For what the model found itself: the example kept from that finding, run when the search misses it.
    kept: str | None = None


MUTANTS = (
    Mutant(
        "won_dispute_restores_status_before",
        (
            (
                "domain/payments.py",
                "    return paid_status(payment.paid_amount",
                "    if dispute == 'won':\n        return payment.dispute.status_before  # type: ignore[union-attr]\n"
                "    return paid_status(payment.paid_amount",
            ),
        ),
    ),
    Mutant(
        "refund_during_open_dispute_moves_status",
        (
            (
                "domain/payments.py",
                "    if dispute_status is not None and dispute_status not in DISPUTE_CLOSED:",
                "    if refunded == 0 and dispute_status is not None and dispute_status not in DISPUTE_CLOSED:",
            ),
        ),
    ),
    Mutant(
        "intent_event_moves_a_paid_payment",
        (
            (
                "domain/payments.py",
                "    return current not in PAID and can_move(current, target)",
                "    return can_move(current, target)",
            ),
            (
                "domain/payments.py",
                "    return [status for status in sources_of(target) if status not in PAID]",
                "    return sources_of(target)",
            ),
            ("usecases/transitions.py", "        if payment.status in PAID:\n", "        if False:\n"),
            (
                "usecases/transitions.py",
                "    return settle(_advance(event, payment, target, deps, charge_id), deps)",
                "    return _advance(event, payment, target, deps, charge_id)",
            ),
        ),
    ),
    Mutant(
        "confirm_records_no_event_time",
        (
            (
                "usecases/activation.py",
                "        moved = deps.payments.move(payment, target, None, at)",
                "        moved = deps.payments.move(payment, target, None, payment.last_event_at)",
            ),
        ),
        hidden="an intent never moves a paid payment (intent_can_move), so a missing time cannot be seen",
    ),
    Mutant(
        "failed_refund_resurrected",
        (
            (
                "domain/refunds.py",
                "    if current == FAILED or stripe_status in NOT_REFUNDED:",
                "    if stripe_status in NOT_REFUNDED:",
            ),
            (
                "adapters/refunds.py",
                '"refunds": {"$elemMatch": {**mine, "status": {"$ne": FAILED}}}}',
                '"refunds": {"$elemMatch": mine}}',
            ),
            (
                "adapters/refunds.py",
                'still = {"id": stripe_id, "counted": {"$ne": True}, "status": {"$ne": FAILED}}',
                'still = {"id": stripe_id, "counted": {"$ne": True}}',
            ),
            (
                "adapters/refunds.py",
                'unreleased = {"counted": {"$ne": True}, "released": {"$ne": True}, "status": {"$ne": FAILED}}',
                'unreleased = {"counted": {"$ne": True}}',
            ),
        ),
    ),
    Mutant(
        "refund_first_seen_failed_keeps_its_hold",
        (
            (
                "adapters/refunds.py",
                '        held = {"counted": {"$ne": True}, "$or": _UNRELEASED}',
                '        held = {"counted": {"$ne": True}, "status": {"$ne": FAILED}, "$or": _UNRELEASED}',
            ),
        ),
    ),
    Mutant(
        "redelivered_refund_skips_what_follows",
        (
            (
                "usecases/refunds.py",
                "        _carried_out(payment, entry, deps)  # a crash may have come right after the money moved\n",
                "",
            ),
            (
                "usecases/sweeps.py",
                "            finished += finish_refund(intent_id, request, refund, deps)",
                "            finished += 0",
            ),
            (
                "usecases/refunds.py",
                '        if deps.refunds.count(payment, stripe_id, int(refund["amount"]), reserved):\n'
                '            log.info("refund recorded", extra={"outcome": "refunded"})\n',
                '        if not deps.refunds.count(payment, stripe_id, int(refund["amount"]), reserved):\n'
                "            return\n",
            ),
        ),
    ),
    Mutant(
        "sweep_activates_a_dismissed_review",
        (("adapters/mongo.py", '            "reviewResolved.action": {"$nin": list(NOT_ACTIVATED)},\n', ""),),
    ),
    Mutant(
        "review_refund_asks_for_the_stored_price",
        (("usecases/reviews.py", "whole_charge=True, resolving=resolved", "whole_charge=False, resolving=resolved"),),
        hidden="what Stripe took is recorded (amountReceived) before a review, so the stored price is never used",
    ),
    Mutant(
        "review_refund_queued_before_the_resolve",
        (
            ("usecases/reviews.py", "whole_charge=True, resolving=resolved", "whole_charge=True, resolving=None"),
            (
                "usecases/reviews.py",
                "        outcome = _refund(intent_id, who, deps, now=now)\n",
                "        outcome = _refund(intent_id, who, deps, now=now)\n"
                "        deps.payments.resolve_review(reload(payment, deps), action, who.name)\n",
            ),
        ),
    ),
    Mutant(
        "claim_taken_over_from_a_live_run",
        (
            (
                "adapters/refunds.py",
                "        if self.over is None or not isinstance(other, str) or not self.over(other):",
                "        if not isinstance(other, str):",
            ),
        ),
        hidden="both runs ask Stripe with one idempotency key and get one refund: no money moves twice here",
    ),
    # What the model itself found (docs/model-test.md), each put back the same way.
    Mutant(
        "refunds_count_from_the_price_not_what_stripe_took",
        (
            (
                "domain/payments.py",
                "        return self.amount if self.amount_received is None else self.amount_received",
                "        return self.amount",
            ),
        ),
        kept="test_found_an_underpaid_charge_refunded_in_full_is_refunded",
    ),
    Mutant(
        "a_partial_refund_stops_the_activation",
        (
            (
                "domain/activation.py",
                "ACTIVATABLE = frozenset({COMPLETED, PARTIALLY_REFUNDED})",
                "ACTIVATABLE = frozenset({COMPLETED})",
            ),
        ),
        kept="test_found_a_partial_refund_before_the_activation_does_not_stop_it",
    ),
    Mutant(
        "an_event_that_changed_nothing_keeps_no_time",
        (
            (
                "usecases/transitions.py",
                "            if payment.last_event_at is None or event.created_at > payment.last_event_at:\n"
                "                deps.payments.note_event",
                "            if False:\n                deps.payments.note_event",
            ),
        ),
        kept="test_found_an_older_event_delivered_after_a_newer_one_that_changed_nothing",
    ),
    Mutant(
        "a_resolved_review_is_raised_again",
        (
            (
                "adapters/mongo.py",
                '"reviewRequired": None, "reviewResolved.reason": {"$ne": reason}}',
                '"reviewRequired": None}',
            ),
        ),
        kept="test_found_a_review_a_person_resolved_is_not_raised_again",
    ),
)


def tracked_copy(target: Path) -> None:
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True).stdout
    for name in files.decode().split("\0"):
        if name and (ROOT / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, target / name)


def apply(mutant: Mutant, tree: Path) -> None:
    for path, now, was in mutant.edits:
        text = (tree / path).read_text()
        if text.count(now) != 1:
            raise SystemExit(f"{mutant.name}: {path} no longer has the code it reverts: {now!r}")
        (tree / path).write_text(text.replace(now, was))


def run_model(tree: Path, test: str = "one_payments_life") -> tuple[bool, str]:
    """(found, the assertion that failed) of a model test on ``tree``: by default ``make test``'s search, unshrunk."""
    command = [sys.executable, "-m", "pytest", "tests/model/test_payment_life.py", "-k", test]
    command += ["-x", "-q", "-p", "no:cacheprovider", "--timeout=0", "--session-timeout=86400"]
    env = {**os.environ, "PYTHONPATH": str(tree), "HYPOTHESIS_PROFILE": "put-back"}
    done = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True)
    if done.returncode not in (0, 1):
        raise SystemExit(f"the model test could not run ({done.returncode}):\n{done.stdout[-3000:]}{done.stderr}")
    if done.returncode == 1 and "FAILED tests/model" not in done.stdout:  # an error around the test, not in it
        raise SystemExit(f"the model test did not run to a verdict:\n{done.stdout[-3000:]}{done.stderr}")
    why = next((line for line in done.stdout.splitlines() if re.match(r"E\s+\w+Error", line)), "")
    return done.returncode == 1, why[1:].strip()


def main(names: list[str]) -> int:
    chosen = [m for m in MUTANTS if not names or m.name in names]
    missed = 0
    for mutant in chosen:
        with tempfile.TemporaryDirectory(prefix="put-back-") as tmp:
            tree = Path(tmp)
            tracked_copy(tree)
            apply(mutant, tree)
            started = time.monotonic()
            found, why = run_model(tree)
            by_example = not found and mutant.kept is not None and run_model(tree, mutant.kept)[0]
            took = time.monotonic() - started
        if found:
            verdict = "found"
        elif by_example:
            verdict = f"found by the example kept from the model's finding ({mutant.kept}), not by this search"
        elif mutant.hidden:
            verdict = f"not found, as expected: {mutant.hidden}"
        else:
            verdict, missed = "NOT FOUND", missed + 1
        print(f"{mutant.name}: {verdict} ({took:.0f} s){f' - {why}' if found else ''}", flush=True)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
