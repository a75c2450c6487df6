"""Events and webhooks: an outbox written in the audited transaction, subscriptions, and a
dispatcher that delivers signed events at least once, in order per model."""
