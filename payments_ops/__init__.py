"""``payments-ops``: the ops operations for people on a shell (CONTRACT §4)."""
