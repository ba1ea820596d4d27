"""Tier 5: the training engine and the U-Net task; imports the tiers below."""
