"""The double-entry ledger every money feature uses: accounts, operations under
idempotency keys, two-phase holds, and the audit (``service.py``, ``models.py``)."""
