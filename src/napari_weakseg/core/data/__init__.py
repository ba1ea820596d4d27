"""Tier 2: volumes on disk and in memory, sparse labels, boxes, pools;
imports base.
"""
