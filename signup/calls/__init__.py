"""Inbound missed calls: the webhook, the call log (our outbox) and its processing."""
