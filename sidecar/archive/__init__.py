"""The archive's vocabulary, shared by the import and the background jobs: media kinds and the
app's extension lists, the folder layout, and where the app keeps each kind of media."""
