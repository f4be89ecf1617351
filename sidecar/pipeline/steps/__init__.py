"""The five steps of an import, one module each, over a shared RunContext: scan, hash, copy,
validate, finalize. Each is an async `run(ctx)` that carries on from the journal."""
