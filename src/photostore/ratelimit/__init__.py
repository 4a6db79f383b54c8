"""Request rate limits per API key: GCRA, kept in Redis in cluster mode (see ratelimit.limiter)."""
