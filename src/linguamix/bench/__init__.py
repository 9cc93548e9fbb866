"""Benchmarks of linguamix's own stages on this machine (`linguamix bench ...`): each times the fast
path against the plain one on the same work and reports throughput, never asserting a threshold."""
