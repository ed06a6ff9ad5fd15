"""Merchant accounts' apps and the keys both sides sign with."""
