"""Run plumbing that composes the components for a command (docs/ARCHITECTURE.md)."""
