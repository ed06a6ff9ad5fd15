"""Money sent between people, confirmed by the payment password, once per key."""
