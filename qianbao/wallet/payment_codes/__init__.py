"""A person's payment code: the short-lived number a shop scans to take a payment."""
