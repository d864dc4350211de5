"""Entry points: the CLI, the worker and the pytest plugin."""
