"""Fakes at the provider's HTTP boundary only."""
