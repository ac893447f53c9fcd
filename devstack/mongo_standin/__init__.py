"""A MongoDB stand-in: speaks the MongoDB wire protocol over TCP, executes with mongomock.

Run it with ``python -m devstack.mongo_standin --port N [--snapshot PATH]``; point any MongoDB
driver at ``mongodb://127.0.0.1:N``. Modules, outside in:
  ``__main__`` (CLI), ``server`` (asyncio TCP server, snapshots on a timer and at shutdown),
  ``wire`` (message framing and BSON codec), ``commands`` (the engine: dispatch, one at a time),
  ``admin`` / ``catalog`` / ``reads`` / ``writes`` (the commands), ``cursors`` (batches, getMore),
  ``backend`` (mongomock, adapted) with ``lookup`` (queries served through indexes), ``unique``
  (unique-index checks) and ``hashindex`` (the key maps both use), ``errors`` (MongoDB codes),
  ``snapshot`` (state file, written by a forked child: ``forked``), ``journal`` (write-ahead log
  next to it: group commit, replay, compaction) with ``changes`` (what a command changed, as the journal records it).
"""
