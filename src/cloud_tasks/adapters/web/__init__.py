"""Adapters over plain HTTP(S) with the standard library: task files at ``http(s)://`` URLs."""
