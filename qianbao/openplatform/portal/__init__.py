"""The merchant portal: a merchant's people sign in and see their trades, refunds,
notifications, keys and bills (pages under /merchant, the API under /api/v1/merchant)."""
