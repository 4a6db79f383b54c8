"""A local cluster of the real engines on loopback, for development and tests."""
