"""Background jobs on the app's `jobs` table: the store (all job SQL), the scheduler and handlers."""
