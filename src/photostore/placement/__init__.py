"""Placement: one consistent-hash ring for shards, buckets and cache nodes."""
