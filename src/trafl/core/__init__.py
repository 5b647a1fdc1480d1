"""The ground floor: data types and house rules (docs/ARCHITECTURE.md)."""
