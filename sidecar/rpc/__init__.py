"""The wire: framing, stdio ownership, and the dispatcher that turns lines into method calls."""
