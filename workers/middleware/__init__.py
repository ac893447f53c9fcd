"""Dramatiq middleware of this project, one per file."""
