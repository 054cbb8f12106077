"""Runnable examples of gate_mw; run them from the repository root (see README.md)."""
