"""Stored bytes checked against their SHA-256: on reads (sampled), by ``photostore audit`` (every
object), with corrupt objects quarantined; and orphan objects collected by ``photostore gc``."""
