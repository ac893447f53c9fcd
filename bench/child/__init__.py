"""Modules the benchmark runs inside child processes. They import only the measured project's
modules and the standard library (never ``bench.*``), since a child finds them by path."""
