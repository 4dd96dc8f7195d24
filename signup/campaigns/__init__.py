"""Campaigns: a published missed-call number, an optional opt-out number and the SMS texts."""
