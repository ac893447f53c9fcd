"""One email as the bytes that go on the wire: multipart/alternative, a text and an HTML part.

Written out here rather than by ``email``'s generator: flattening even the ``compat32`` classes
re-folds every header through ``Header`` and compiles a regular expression per message to check its
random boundary: most of what a worker spent sending an email
(docs/performance.md#figures-from-code-comments). These bytes cost a small part of that and read
back the same (``tests/integration/test_mailer_connection.py``):
  * every line is 7-bit and at most 78 characters: a header value that is not plain ASCII, or
    too long, goes through ``Header`` (RFC 2047 encoded words, folded); bodies are UTF-8 in base64
    (76-character lines, and the text comes back exactly, line ends included);
  * the boundary starts ``=_``, which base64 can never produce, so no part needs checking for it;
  * a value carrying CR or LF raises ``ValueError``: it could only be an injected header.
"""

from __future__ import annotations

import base64
import email.charset
import email.utils
import secrets
from email.header import Header

_UTF8 = email.charset.Charset("utf-8")
#: RFC 5322 asks for header lines of at most 78 characters.
_LINE = 78
_CRLF = b"\r\n"


def header(name: str, value: str) -> str:
    """``Name: value`` as one folded, 7-bit header field (no final line end)."""
    if "\r" in value or "\n" in value:
        raise ValueError(f"a line break in the {name} header")
    if value.isascii() and len(name) + 2 + len(value) <= _LINE:
        return f"{name}: {value}"
    charset = None if value.isascii() else _UTF8
    return f"{name}: " + Header(value, charset, header_name=name).encode(linesep="\r\n")


def address(display: str, addr: str) -> str:
    """``Display <addr>``, the display name quoted or encoded as it needs (``addr`` alone when no name)."""
    return email.utils.formataddr((display, addr), charset=_UTF8)


def _part(body: str, subtype: str) -> bytes:
    encoded = base64.encodebytes(body.encode("utf-8")).replace(b"\n", _CRLF)
    head = f'Content-Type: text/{subtype}; charset="utf-8"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
    return head.encode("ascii") + encoded


def compose(headers: list[tuple[str, str]], text: str, html: str) -> bytes:
    """The whole message: ``headers`` in order, then the MIME headers and the two parts."""
    boundary = "=_" + secrets.token_hex(8)  # unique enough: base64 never holds "=_"
    lines = [header(name, value) for name, value in headers]
    lines += ["MIME-Version: 1.0", f'Content-Type: multipart/alternative; boundary="{boundary}"', "", ""]
    delimiter = f"--{boundary}\r\n".encode("ascii")
    return b"".join(
        [
            "\r\n".join(lines).encode("ascii"),
            delimiter,
            _part(text, "plain"),
            delimiter,
            _part(html, "html"),
            f"--{boundary}--\r\n".encode("ascii"),
        ]
    )
