"""Readers of annotation formats (MPII, FLIC) and the synthetic people generator."""
