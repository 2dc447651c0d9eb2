"""The analyst's page: matches with their highlighted terms, an article's text and why it matched, trying a rule
against last week's news before saving it, feeds and alerts; served by the daemon (`watcher run --http`, beside
/healthz and /metrics) or by `watcher ui` against the database alone. Starlette is imported in this package only,
uvicorn in server.py only.

app.py       the WebContext, templates, forms and messages shared by the pages
site.py      the application: the route table, ops endpoints, login
security.py  loopback by default, login elsewhere, CSRF on every POST, strict headers
present.py   how stored values look: marked snippets, local times, safe links (pure)
stories.py   stories (one per news event, N sources), filters and search; a story's articles; split and merge
matches.py   matches per topic, filters and search; an article's page and its explanation
tryrule.py   editing a topic's rule: errors at their position, what-if against text, a URL or stored news; save
feeds.py     feed health, add by URL (discovery), remove
alerts.py    the outbox, failed and dead deliveries, retry
teach.py     relevant / not relevant on every match; the queue of the models' calls to confirm or dismiss
server.py    uvicorn on the caller's event loop
"""

from .app import ConfigFile, WebContext
from .security import Access, access_for, is_loopback
from .server import WebServer
from .site import build_app

__all__ = ["Access", "ConfigFile", "WebContext", "WebServer", "access_for", "build_app", "is_loopback"]
