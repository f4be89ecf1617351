"""The import pipeline: scan → hash → copy → validate → finalize, resumable per file.

Nothing here imports `rpc/` or `api/`: progress leaves through an injected event sink.
"""
