"""Event contracts, the JetStream publisher and listeners, and the transactional outbox."""
