"""Synthetic event generators."""
