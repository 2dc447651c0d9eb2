"""watcher: a news-monitoring daemon. The module map is in docs/architecture.md."""

__version__ = "0.1.0"
PROJECT_URL = "https://github.com/watcher-news/watcher"
# Sent with every request, so a site's operator can see who polls them and how to reach us.
DEFAULT_USER_AGENT = f"watcher/{__version__} (+{PROJECT_URL})"
