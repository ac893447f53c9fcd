"""``alert_state``: each alert rule's state for the email evaluator, and whose turn it is to evaluate.

One document per rule (``_id`` its name: ``firing``, ``since``, ``lastEmailAt``, ``value``,
``resolvedAt``, ``updatedAt``), changed only by conditional writes on the state the evaluator saw:
of two evaluators deciding the same change, one write matches and the other changes nothing, so
one email goes out. One more document, ``_id: "~round"``, holds the next time an evaluation is
due: the worker that moves it forward evaluates, the others skip that minute.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from adapters.mongo import Doc
from domain.alerts import RULES, EmailDue, RuleState

ROUND = "~round"


class MongoAlertStates:
    def __init__(self, db: Database[Doc]) -> None:
        self.collection: Collection[Doc] = db.alert_state

    def claim_round(self, holder: str, at: datetime, every: timedelta) -> bool:
        """Take this round if it is due (its previous one was ``every`` ago, or never); True for one caller."""
        # A second's slack: a worker whose timer fires a moment early still takes its own next round.
        due = {"_id": ROUND, "$or": [{"next": {"$lte": at}}, {"next": {"$exists": False}}]}
        update = {"$set": {"next": at + every - timedelta(seconds=1), "holder": holder, "at": at}}
        try:
            result = self.collection.update_one(due, update, upsert=True)
        except DuplicateKeyError:  # another evaluator inserted it first
            return False
        return bool(result.modified_count or result.upserted_id is not None)

    def states(self) -> dict[str, RuleState]:
        found = self.collection.find({"_id": {"$in": [rule.name for rule in RULES]}})
        return {
            str(doc["_id"]): RuleState(bool(doc.get("firing")), doc.get("since"), doc.get("lastEmailAt"))
            for doc in found
        }

    def fire(self, name: str, at: datetime, value: float | None, due: EmailDue | None) -> bool:
        """Record that the rule started firing, unless it already is; True when this call recorded it."""
        update = {"$set": {"firing": True, "since": at, "lastEmailAt": at, "value": value, "updatedAt": at,
                           "emailDue": _due(due)}}  # fmt: skip
        try:
            result = self.collection.update_one({"_id": name, "firing": {"$ne": True}}, update, upsert=True)
        except DuplicateKeyError:  # another evaluator recorded it first
            return False
        return bool(result.modified_count or result.upserted_id is not None)

    def remind(self, name: str, state: RuleState, at: datetime, value: float | None, due: EmailDue | None) -> bool:
        """Move ``lastEmailAt`` to ``at`` if nobody did since ``state`` was read."""
        seen = {"_id": name, "firing": True, "since": state.since, "lastEmailAt": state.last_email_at}
        update = {"$set": {"lastEmailAt": at, "value": value, "updatedAt": at, "emailDue": _due(due)}}
        return self.collection.update_one(seen, update).modified_count == 1

    def resolve(self, name: str, state: RuleState, at: datetime, value: float | None, due: EmailDue | None) -> bool:
        """Record that the firing seen in ``state`` is over; True when this call recorded it."""
        seen = {"_id": name, "firing": True, "since": state.since}
        update = {"$set": {"firing": False, "resolvedAt": at, "lastEmailAt": at, "value": value, "updatedAt": at,
                           "emailDue": _due(due)}}  # fmt: skip
        return self.collection.update_one(seen, update).modified_count == 1

    def owed(self) -> list[EmailDue]:
        found = self.collection.find({"_id": {"$in": [rule.name for rule in RULES]}, "emailDue": {"$type": "object"}})
        return [EmailDue(rule=str(doc["_id"]), **doc["emailDue"]) for doc in found]

    def paid(self, due: EmailDue) -> None:
        """Forget the email once the outbox has it, unless a newer change owes another since."""
        self.collection.update_one({"_id": due.rule, "emailDue.at": due.at}, {"$set": {"emailDue": None}})


def _due(due: EmailDue | None) -> Doc | None:
    return None if due is None else {"change": due.change, "since": due.since, "at": due.at, "value": due.value}
