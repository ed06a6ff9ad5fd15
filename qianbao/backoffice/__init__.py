"""The back office's work that spans domains (a person's read-only lookup) and the staff
JSON API (``/api/v1/staff/...``): the same service functions the back-office pages call."""
