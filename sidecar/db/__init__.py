"""The SQLite file shared with the running app: connection rules and table shapes."""
