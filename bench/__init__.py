"""Benchmarks: each runs the peer or limit side by side with photostore and reports ratios."""
