"""Organiser accounts for the admin."""
