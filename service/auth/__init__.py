"""Who may call the service: API keys (stored hashed) and signed, expiring media URLs."""
