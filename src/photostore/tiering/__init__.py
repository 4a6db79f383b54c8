"""Storage tiers for originals: idle ones to a cold bucket, read ones back (see tiering.job)."""
