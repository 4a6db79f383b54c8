"""Object storage: originals and derivatives in buckets placed by the ring."""
