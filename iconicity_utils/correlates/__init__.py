"""correlates."""
