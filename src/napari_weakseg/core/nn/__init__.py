"""Tier 3: networks, model files, losses; imports base and data."""
