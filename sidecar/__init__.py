"""AU Archive import sidecar: the app's import pipeline and background jobs, over JSON-RPC 2.0 on stdio."""

__version__ = "0.1.0"

# Bumped when the wire contract in protocol/ changes incompatibly; sent in `sidecar:ready`.
PROTOCOL_VERSION = "1.0.0"
