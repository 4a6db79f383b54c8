"""photostore: a photo storage service that scales from one laptop to a billion users."""

__version__ = "0.1.0"
