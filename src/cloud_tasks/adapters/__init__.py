"""Adapters: one package per provider, each implementing the ports."""
