"""Across markets: pooling each market's published estimates (random-effects meta-analysis)."""
