"""The versioned dataset store: rows and their checks, file readers, the store, the bundled suite."""
