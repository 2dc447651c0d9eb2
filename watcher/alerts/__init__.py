"""Alerts: the outbox dispatcher, the channels, and digest rendering.

dispatcher = Dispatcher(config, store)        # channels built from config
report = await dispatcher.run(now)            # every ~20-30 s from the daemon
"""

from .digest import AlertItem, Message, RenderSettings, TopicGroup
from .outbox import (
    Batch,
    Channel,
    Dispatcher,
    DispatchReport,
    SendOutcome,
    build_channels,
    plan_batches,
    retry_delay,
)

__all__ = [
    "AlertItem",
    "Batch",
    "Channel",
    "DispatchReport",
    "Dispatcher",
    "Message",
    "RenderSettings",
    "SendOutcome",
    "TopicGroup",
    "build_channels",
    "plan_batches",
    "retry_delay",
]
