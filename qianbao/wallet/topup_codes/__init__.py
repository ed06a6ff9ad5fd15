"""Top-up codes sold by stores and redeemed into the balance."""
