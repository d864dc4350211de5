"""The pure core: value objects and decisions, no I/O, no clock, no randomness.

Only the standard library (minus os, time, random, asyncio, subprocess, socket, threading) and
attrs may be imported here; ``tests/domain/test_purity.py`` enforces it.
"""
