"""Volunteers (the CRM table), their campaign subscriptions and the consent ledger."""
