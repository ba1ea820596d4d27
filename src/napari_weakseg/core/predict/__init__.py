"""Tier 4: sliding-window and tiled prediction, evaluation; imports the
tiers below.
"""
