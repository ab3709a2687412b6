"""Pricing: the settlement index, probability models, calibration."""
