"""The process-pool side: pure, picklable top-level functions for the byte-heavy work."""
