"""The wallet: the double-entry ledger (``ledger``) and, on top of it, balances and payments."""
