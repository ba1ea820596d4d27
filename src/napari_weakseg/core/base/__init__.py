"""Tier 1: settings, errors, events, devices, metrics, file helpers;
imports no other tier.
"""
