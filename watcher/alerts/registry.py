"""The one registry of channel types: config.py reads each channel's options through it, outbox.py builds senders
through it. Adding a channel type is adding a module that declares a ChannelType, and a line here."""

from __future__ import annotations

from .channel import ChannelType
from .console import CONSOLE, FILE
from .email import EMAIL
from .slack import SLACK
from .webhook import WEBHOOK

CHANNEL_TYPES: dict[str, ChannelType] = {t.name: t for t in (CONSOLE, FILE, EMAIL, SLACK, WEBHOOK)}
