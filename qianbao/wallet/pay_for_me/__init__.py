"""Pay-for-me (代付): a link that lets a friend pay someone's order."""
