"""The write-ahead journal: a change is fsynced to disk before a write that asked for that is answered.

Only with a snapshot ``S``: the journal files sit next to it, ``S.journal.1``, ``S.journal.2``...
Protocol:
  * Record: what one command changed (``changes.py``: its effects, not the command, because the
    engine isn't deterministic), as one BSON document ``{cmd, db, ops, crc}`` appended under the
    engine lock right after the command ran, before its reply is sent. ``crc`` is the CRC-32 of the
    document's other elements; a record cut short or failing it ends the replay of its file (a
    crash's torn last record: nothing was acknowledged for it).
  * Group commit: a reply to a command whose write concern asks for the journal (``j: true``,
    ``w: "majority"`` or ``fsync: true``) waits until everything appended up to then is fsynced;
    meanwhile the event loop serves the other connections. ``GroupCommitter`` fsyncs on a thread
    of its own as soon as a reply waits and none is running, and at least every 100 ms (mongod's
    ``commitIntervalMs``), so one fsync covers every record appended while the previous one ran.
    A plain ``w: 1`` write is answered at once, as on mongod, and durable within 100 ms.
  * Compaction: a snapshot's header says ``journal: N`` -- it holds every change of the files
    numbered below N. Taking one, under the engine lock: encode the state and switch appends to
    file N (created at its first record); then write the snapshot atomically; then delete the
    files below N. Killed before the snapshot's rename: the old snapshot and all files are
    replayed; after it: the new one and the files from N on. Nothing twice, nothing missing.
  * Start (``recover``): load the snapshot, apply every complete record of the files numbered
    from its N on, in order; new records go to a file numbered above all existing ones; the
    server then writes a snapshot before listening, which deletes the files replayed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import re
import struct
import threading
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bson

from . import changes, snapshot
from .backend import StandinClient
from .wire import CODEC_OPTIONS

log = logging.getLogger(__name__)

#: mongod's default journal commit interval (``storage.journal.commitIntervalMs``).
GROUP_COMMIT_INTERVAL = 0.1

_INT32 = struct.Struct("<i")
_INT64 = struct.Struct("<q")
# The record's last element: type int64, name "crc", then its value, then the document's end.
_CRC_ELEMENT = b"\x12crc\x00"
_CRC_TAIL = len(_CRC_ELEMENT) + _INT64.size + 1


class JournalError(Exception):
    """The journal can't be written: no further write can be made durable."""


def journal_path(snapshot_path: Path, number: int) -> Path:
    return snapshot_path.with_name(f"{snapshot_path.name}.journal.{number}")


def journal_files(snapshot_path: Path) -> list[tuple[int, Path]]:
    """The journal files next to ``snapshot_path``, by number."""
    pattern = re.compile(re.escape(snapshot_path.name) + r"\.journal\.([0-9]+)")
    found = []
    if snapshot_path.parent.is_dir():
        for path in snapshot_path.parent.iterdir():
            match = pattern.fullmatch(path.name)
            if match:
                found.append((int(match.group(1)), path))
    return sorted(found)


def encode_record(record: dict[str, Any]) -> bytes:
    """``record`` as BSON, with a last element ``crc``: the CRC-32 of the elements before it."""
    body = bson.encode(record)
    elements = body[4:-1]
    tail = _CRC_ELEMENT + _INT64.pack(zlib.crc32(elements)) + b"\x00"
    return _INT32.pack(4 + len(elements) + len(tail)) + elements + tail


def read_records(path: Path) -> tuple[list[dict[str, Any]], int]:
    """The complete records of a journal file, and how many bytes after them were not one."""
    data = path.read_bytes()
    records: list[dict[str, Any]] = []
    offset = 0
    while offset < len(data):
        record = _record_at(data, offset)
        if record is None:
            return records, len(data) - offset
        records.append(record)
        offset += _INT32.unpack_from(data, offset)[0]
    return records, 0


def _record_at(data: bytes, offset: int) -> dict[str, Any] | None:
    if len(data) - offset < _INT32.size:
        return None
    (length,) = _INT32.unpack_from(data, offset)
    if length < 4 + _CRC_TAIL or offset + length > len(data):
        return None
    raw = data[offset : offset + length]
    if raw[-_CRC_TAIL : -_CRC_TAIL + len(_CRC_ELEMENT)] != _CRC_ELEMENT or raw[-1] != 0:
        return None
    (crc,) = _INT64.unpack_from(raw, length - 1 - _INT64.size)
    if zlib.crc32(raw[4:-_CRC_TAIL]) != crc:
        return None
    try:
        return bson.decode(raw, CODEC_OPTIONS)
    except bson.errors.InvalidBSON:
        return None


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Journal:
    """The journal files of one snapshot path: append (engine lock held), sync (worker thread).

    Positions (``end``, ``durable``) count bytes appended since the server started, over all files.
    """

    def __init__(self, snapshot_path: Path, number: int) -> None:
        self.snapshot_path = snapshot_path
        self.number = number  # of the file records go to
        self.end = 0  # position after the last record appended
        self.durable = 0  # everything before this position is fsynced
        self.broken: str | None = None  # why the journal can't be written any more
        self.replayed = 0  # records applied at start
        self.files_at_start = 0  # journal files found at start (the server compacts them)
        self._fd: int | None = None  # file ``number``, opened at its first record
        self._unsynced: list[int] = []  # earlier files: fsync, then close
        self._new_file = False  # a file was created since the last sync: fsync the directory
        self._lock = threading.Lock()  # between the appending thread and the syncing one

    def append(self, cmd: str, db: str, ops: list[changes.Op]) -> None:
        """Write the record of one command (not yet durable: see ``sync``)."""
        if self.broken is not None:
            raise JournalError(self.broken)
        data = encode_record({"cmd": cmd, "db": db, "ops": ops})  # may raise; the file is untouched then
        with self._lock:
            try:
                if self._fd is None:
                    path = journal_path(self.snapshot_path, self.number)
                    path.parent.mkdir(parents=True, exist_ok=True)
                    self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
                    self._new_file = True
                view = memoryview(data)
                while view:
                    view = view[os.write(self._fd, view) :]
            except OSError as exc:
                # Maybe half a record is in the file now: append nothing after it.
                self.broken = f"cannot append to {journal_path(self.snapshot_path, self.number)}: {exc}"
                raise JournalError(self.broken) from exc
            self.end += len(data)

    def rotate(self, number: int) -> None:
        """Send the next records to file ``number`` (under the engine lock, with the snapshot's dump)."""
        with self._lock:
            if self._fd is not None:
                self._unsynced.append(self._fd)
                self._fd = None
            self.number = number

    def sync(self) -> int:
        """fsync everything appended so far (blocking: run it in a worker thread); return ``durable``."""
        if self.broken is not None:
            raise JournalError(self.broken)
        with self._lock:
            target = self.end
            earlier = list(self._unsynced)
            fds = earlier + ([self._fd] if self._fd is not None else [])
            new_file, self._new_file = self._new_file, False
        try:
            for fd in fds:
                os.fdatasync(fd)
            if new_file:
                _fsync_directory(self.snapshot_path.parent)
        except OSError as exc:
            self.broken = f"cannot fsync the journal of {self.snapshot_path}: {exc}"
            raise JournalError(self.broken) from exc
        with self._lock:
            for fd in earlier:
                self._unsynced.remove(fd)
                os.close(fd)
            self.durable = max(self.durable, target)
            return self.durable

    def remove_before(self, number: int) -> None:
        """Delete the files a snapshot now holds (numbered below ``number``)."""
        for file_number, path in journal_files(self.snapshot_path):
            if file_number < number:
                path.unlink(missing_ok=True)

    def close(self) -> None:
        with self._lock:
            for fd in [*self._unsynced, *([self._fd] if self._fd is not None else [])]:
                os.close(fd)
            self._unsynced.clear()
            self._fd = None


def recover(snapshot_path: Path) -> tuple[StandinClient, Journal]:
    """The state the stand-in acknowledged: the snapshot, then the journal files it doesn't hold.

    Raises ``snapshot.SnapshotError`` when the snapshot is damaged or a complete record can't be applied.
    """
    if snapshot_path.exists():
        client, first = snapshot.load_state(snapshot_path)
    else:
        client, first = StandinClient(), 0
    files = journal_files(snapshot_path)
    replayed = 0
    for number, path in files:
        if number < first:
            continue  # already in the snapshot (killed before deleting it)
        records, ignored = read_records(path)
        for index, record in enumerate(records):
            try:
                changes.apply(client, record["ops"])
            except Exception as exc:
                raise snapshot.SnapshotError(f"{path}: record {index} can't be applied: {exc!r}") from exc
        replayed += len(records)
        if ignored:
            log.warning("%s: ignored %d bytes after its last complete record (cut short)", path, ignored)
    journal = Journal(snapshot_path, max([first, 1] + [number + 1 for number, _ in files]))
    journal.replayed = replayed
    journal.files_at_start = len(files)
    if files:
        log.info("replayed %d journal records from %d files", replayed, len(files))
    return client, journal


class GroupCommitter:
    """Makes the journal durable for the replies that wait, one fsync round for all of them at a time.

    A round (``Journal.sync`` on the committer's own thread) starts as soon as a reply waits and
    none is running; when one ends, the replies it covers are released and, if others came
    meanwhile, the next round starts at once. ``run`` (a task) also starts one every ``interval``
    seconds if anything was appended, so unawaited writes are durable within that time too.
    Waiters are callbacks (``when_durable``, what connections use: no task switch per reply) or
    coroutines (``wait``). The thread hands a finished round back with one ``call_soon_threadsafe``:
    a ``run_in_executor`` future chain cost more CPU than the rest of a small write's reply.
    """

    def __init__(self, journal: Journal, interval: float = GROUP_COMMIT_INTERVAL) -> None:
        self.journal = journal
        self.interval = interval
        self.syncs = 0  # fsync rounds done (for measurements)
        self._waiters: list[tuple[int, Callable[[JournalError | None], None]]] = []
        self._running = False  # a round is running
        self._rounds: queue.SimpleQueue[bool] = queue.SimpleQueue()  # True: run one; False: end the thread
        self._thread: threading.Thread | None = None  # started with the first round
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    def when_durable(self, position: int, callback: Callable[[JournalError | None], None]) -> None:
        """Call ``callback(None)`` once everything before ``position`` is durable (at once if it is
        already), or ``callback(error)`` if it can't be; always on the event loop."""
        if position <= self.journal.durable:
            callback(None)
            return
        self._waiters.append((position, callback))
        self._start_round()

    async def wait(self, position: int) -> None:
        """Return once everything before ``position`` is durable; raise ``JournalError`` if it can't be."""
        if position <= self.journal.durable:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def release(error: JournalError | None) -> None:
            if future.done():
                return  # the waiter was cancelled
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(None)

        self.when_durable(position, release)
        await future

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            if self.journal.end > self.journal.durable:
                self._start_round()

    async def flush(self) -> None:
        """Make everything appended so far durable (or fail every waiter), e.g. before closing."""
        with contextlib.suppress(JournalError):
            await self.wait(self.journal.end)
        self._closed = True
        if self._thread is not None:
            self._rounds.put(False)
            self._thread.join()

    def _start_round(self) -> None:
        if self._running:
            return  # the round after the running one covers what came since
        if self._closed:
            raise RuntimeError("the group committer is flushed: no more rounds")
        if self._thread is None:
            self._loop = asyncio.get_running_loop()
            self._thread = threading.Thread(target=self._sync_rounds, name="journal-fsync", daemon=True)
            self._thread.start()
        self._running = True
        self._rounds.put(True)

    def _sync_rounds(self) -> None:
        """The committer's thread: one ``Journal.sync`` per round asked for."""
        assert self._loop is not None
        while self._rounds.get():
            error: BaseException | None = None
            try:
                self.journal.sync()
            except BaseException as exc:  # handed to the waiters, as a future would have
                error = exc
            try:
                self._loop.call_soon_threadsafe(self._round_done, error)
            except RuntimeError:
                return  # the loop is closed: nobody waits any more

    def _round_done(self, error: BaseException | None) -> None:
        self._running = False
        self.syncs += 1
        waiting = []
        released: list[tuple[Callable[[JournalError | None], None], JournalError | None]] = []
        for position, callback in self._waiters:
            if error is not None:
                released.append((callback, JournalError(str(error))))
            elif position <= self.journal.durable:
                released.append((callback, None))
            else:
                waiting.append((position, callback))
        self._waiters = waiting
        if waiting:
            self._start_round()
        for callback, failure in released:
            try:
                callback(failure)
            except Exception:  # one waiter's failure must not leave the others waiting
                log.exception("a journal waiter failed")
