"""`watcher run` as a subprocess on a config file, with its log lines readable under a deadline (no sleeps)."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

CONFIG = """
[watcher]
database = "watcher.db"
[schedule]
interval = "15m"
tick = "1s"
[fetch]
allow_networks = ["127.0.0.0/8"]
timeout = "5s"
[extract]
workers = 1
[[feeds]]
name = "world"
url = "{base}/world.rss"
[[feeds]]
name = "broken-server"
url = "{base}/error.xml"
[topics.drone_cooperation]
rule = "drone* AND (produc* OR factory OR plant)"
[channels.console]
type = "console"
mode = "immediate"
"""


class Daemon:
    """`watcher run` in a subprocess, its log lines readable with a deadline instead of sleeps."""

    def __init__(self, workdir: Path, *args: str, own_group: bool = False):
        """`own_group`: start it as the leader of its own process group, so a test can signal it and its workers
        together, as a terminal's Ctrl-C does."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHER_")}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "watcher", "--config", str(workdir / "config.toml"), *args, "run"],
            cwd=workdir,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            start_new_session=own_group,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.log: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line)

    def wait_for(self, text: str, timeout: float = 60, *, after: int = 0) -> str:
        """The first log line containing `text` (from line `after` on), logged before or within `timeout` s from now."""
        for line in self.log[after:]:
            if text in line:
                return line
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=max(0.05, deadline - time.monotonic()))
            except queue.Empty:
                break
            self.log.append(line)
            if text in line:
                return line
        raise AssertionError(f"{text!r} not logged within {timeout} s; log:\n" + "".join(self.log))

    def all_output(self) -> str:
        """Everything it printed, once it has exited (the lines not yet read by wait_for included)."""
        self._reader.join(timeout=15)
        while not self.lines.empty():
            self.log.append(self.lines.get())
        return "".join(self.log)

    def stop(self, sig=signal.SIGTERM) -> float:
        started = time.monotonic()
        self.proc.send_signal(sig)
        self.proc.wait(timeout=15)
        return time.monotonic() - started
