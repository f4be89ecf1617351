"""Helpers shared by the test packages (import from here, never from another test module)."""
