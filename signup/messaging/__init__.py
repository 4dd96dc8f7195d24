"""Outgoing SMS: texts, the message outbox, providers and delivery status."""
