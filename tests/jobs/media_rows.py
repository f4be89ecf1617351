"""Moved to tests/support/archive.py. Only bench/ still imports this name; delete this file once it
imports from tests.support."""

from tests.support.archive import add_media_row as add_media_row
