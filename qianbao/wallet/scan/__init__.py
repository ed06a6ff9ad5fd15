"""Scan: a code read by the camera or pasted, resolved to the page it stands for."""
