"""Benchmarks: figures and ratios printed by ``ccpulse bench``, never asserted in tests."""
