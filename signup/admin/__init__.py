"""The organisers' admin: login, volunteer list and page, audited CSV export."""
