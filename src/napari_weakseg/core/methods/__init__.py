"""Tier 6: weak-label methods (boxes, CAM, classifier, pretraining, self-
training); imports the tiers below.
"""
