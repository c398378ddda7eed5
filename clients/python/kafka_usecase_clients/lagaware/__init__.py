"""Lag-aware partitioning (work in progress: the pure choosers; the producer and consumer follow)."""
