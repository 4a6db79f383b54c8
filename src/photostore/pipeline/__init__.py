"""The upload service, the outbox relay and the workers."""
