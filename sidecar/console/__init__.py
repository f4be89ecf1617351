"""Tools for people, on the client side of the protocol: a JSON-RPC client that spawns a sidecar,
the `import` command and the REPL. They speak to the sidecar only through `protocol/`'s methods,
exactly as the app does; nothing here imports the pipeline, the jobs or the database layer."""
