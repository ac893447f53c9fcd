"""A local SMTP server that accepts every message and keeps it as an ``.eml`` file.

``python -m devstack.smtp_sink --port N [--host 127.0.0.1] --dir DIR``

Each message becomes ``DIR/<utc-timestamp>-<counter>.eml``, e.g. ``20250102T030405.123456Z-000007.eml``
(names sort in arrival order). The file holds the message bytes exactly as received after DATA, preceded
by two header lines carrying the SMTP envelope, which the message itself may not show (Bcc):

    X-Sink-Envelope-From: <MAIL FROM address>
    X-Sink-Envelope-To: <RCPT TO addresses, comma separated>

so ``email.message_from_bytes(path.read_bytes())`` parses it as a normal message. A file is written under
a dot-prefixed ``.tmp`` name and renamed, so a reader globbing ``*.eml`` never sees a partial one.

Any AUTH (PLAIN or LOGIN) succeeds, so an app configured with SMTP credentials works unchanged;
there is no STARTTLS.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import logging
import os
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session

from devstack import aio

log = logging.getLogger("devstack.smtp_sink")


class SinkHandler:
    """aiosmtpd handler that writes every accepted message to ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        # The counter tells apart messages that arrive within the same microsecond.
        self._counter = itertools.count(1)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        path = self.store(envelope.mail_from or "", list(envelope.rcpt_tos), envelope.original_content or b"")
        log.info("stored %s from %s to %s", path.name, envelope.mail_from, ", ".join(envelope.rcpt_tos))
        return "250 Message accepted for delivery"

    def store(self, mail_from: str, rcpt_tos: list[str], data: bytes) -> Path:
        """Write one message atomically and return its final path."""
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        name = f"{stamp}-{next(self._counter):06d}.eml"
        # The envelope lines use CRLF like the SMTP data they precede.
        head = f"X-Sink-Envelope-From: {mail_from}\r\nX-Sink-Envelope-To: {', '.join(rcpt_tos)}\r\n"
        tmp = self.directory / f".{name}.tmp"
        final = self.directory / name
        # Small files written synchronously: simpler than a thread, and a dev sink has no load to speak of.
        with open(tmp, "wb") as f:
            f.write(head.encode("utf-8", "surrogateescape") + data)
        os.replace(tmp, final)
        return final


def accept_any_login(server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any) -> AuthResult:
    """aiosmtpd authenticator: every credential is fine, this is a sink."""
    return AuthResult(success=True)


async def serve(host: str, port: int, directory: Path) -> None:
    """Serve SMTP until SIGTERM or SIGINT."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    handler = SinkHandler(directory)

    def protocol() -> SMTP:
        # A fixed hostname: the default, socket.getfqdn(), may do a slow DNS lookup per connection.
        return SMTP(
            handler,
            hostname="smtp-sink",
            auth_require_tls=False,  # plain-text AUTH is fine on a loopback-only dev sink
            authenticator=accept_any_login,
            loop=loop,
        )

    server = await loop.create_server(protocol, host, port)
    log.info("smtp sink listening on %s:%d, writing %s", host, port, directory)
    try:
        await stop.wait()
        log.info("smtp sink stopping")
    finally:
        server.close()
        # From Python 3.12 wait_closed() also waits for open client connections; don't hang on one.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.wait_closed(), timeout=2.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", type=Path, required=True, help="where .eml files are written")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(asctime)s %(name)s %(message)s")
    # aiosmtpd logs every SMTP command at INFO on "mail.log"; our one line per message is enough.
    logging.getLogger("mail.log").setLevel(logging.WARNING)

    directory: Path = args.dir.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    aio.run(serve(args.host, args.port, directory))
    return 0


if __name__ == "__main__":
    sys.exit(main())
