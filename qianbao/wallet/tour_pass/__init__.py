"""Tour Pass: a prepaid balance topped up by foreign card, refunded to the cards at expiry."""
