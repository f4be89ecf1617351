"""`python -m sidecar` and the frozen binary's entry point.

freeze_support() must run before anything else: in a frozen build the process-pool workers are
this same binary, and without it they would re-run the CLI instead of the worker loop.
"""

import multiprocessing

if __name__ == "__main__":
    multiprocessing.freeze_support()

    from sidecar.cli import main

    raise SystemExit(main())
