"""The local provider: a SQLite queue and local process groups as instances (SPEC §8)."""
