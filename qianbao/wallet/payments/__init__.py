"""Paying merchants: their orders, the cashier, payments by balance, foreign card and
mainland bank card, refunds, and the payments left half-way."""
