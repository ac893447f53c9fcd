"""``payments-ops``: the ops operations for people on a shell (docs/operations.md#payments-ops)."""
