"""Moved to tests/support/client.py. Only bench/ still imports this name; delete this file once it
imports from tests.support."""

from tests.support.client import SidecarProcess as SidecarProcess
