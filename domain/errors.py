"""Errors that tell the worker what to do with a message."""


class PermanentError(Exception):
    """Bad data or a broken rule: retrying cannot help, so the message goes to the dead letters."""


class RetryLater(Exception):
    """Something this event needs is not there yet (e.g. the payment document): retry with backoff."""
