"""Alerts: the outbox dispatcher, the channels, and digest rendering.

    outbox.py    Dispatcher: due deliveries -> messages -> channels; claims, outcomes, retries (the daemon's pass)
    digest.py    deliveries -> a Message (subject, text, HTML), pure
    channel.py   what a channel type declares (typed options, reader, builder); registry.py lists them
    console.py email.py slack.py webhook.py   one module per channel type; http.py: the one POST they share

This package's __init__ imports nothing, so config.py can read the channel registry without importing the
outbox (which imports config): `from watcher.alerts.outbox import Dispatcher`.
"""
