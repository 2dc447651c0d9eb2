"""Real parts for the tests: an HTTP site, an SMTP server, a webhook receiver, a hostile-feed site, runners."""
