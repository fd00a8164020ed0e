"""Adaptive search: successive halving over epochs that continues saved networks."""
