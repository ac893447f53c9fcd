"""The fault suite: real processes, real signals, a stream of signed events (README "Fault suite")."""

#: A file by this name in the worker's working directory makes ``crash_hook`` kill it inside its next email send.
CRASH_WHILE_SENDING = "crash-while-sending"
