"""One module per ``trafl`` command, named after it (docs/ARCHITECTURE.md)."""
