"""Errors that tell the worker what to do with a message."""


class PermanentError(Exception):
    """Bad data or a broken rule: retrying cannot help, so the message goes to the dead letters."""


class RetryLater(Exception):
    """Something this event needs is not there yet (e.g. the payment document): retry with backoff."""


class ProviderRefused(Exception):
    """Stripe answered no for good (a 4xx other than 429): recorded with Stripe's reason, never retried."""


class RequestRefused(Exception):
    """A caller's request that the rules refuse; ``code`` is the API's error code.

    Parameters:
      code(str): ``not_found``, ``already_enrolled``, ``amount_mismatch``, ``validation_error``, …
      message(str): for humans.
      field(str): the one field at fault, when there is one.
    """

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
