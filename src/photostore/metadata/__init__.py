"""Photo metadata: users, keys, photos, variants and the outbox, sharded by user."""
