"""Caching of metadata and hot derivatives; losing a cache loses no data."""
