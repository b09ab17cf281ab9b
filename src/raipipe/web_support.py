"""What the server-rendered pages (ranking, human red teaming) share: Jinja over the shipped templates
with one layout, post/redirect/get, and running a page on a real server in a background thread (for
browser tests and notebooks). Apart from either page so that neither imports the other."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader
from starlette.responses import RedirectResponse

SHARED_TEMPLATES = "web"  # holds layout.html.j2: styles, header and the blocks every page fills


def templates_root() -> Path:
    return Path(str(resources.files("raipipe") / "resources" / "templates"))


def page_env(folder: str) -> Environment:
    """A page's own templates (`templates/FOLDER`) first, then the shared layout; text is escaped."""
    root = templates_root()
    return Environment(loader=FileSystemLoader([root / folder, root / SHARED_TEMPLATES]), autoescape=True,
                       trim_blocks=True, lstrip_blocks=True)


def see_other(url: str) -> RedirectResponse:
    """Post/redirect/get: reloading the page after a form post never posts the form again."""
    return RedirectResponse(url, status_code=303)


@contextlib.contextmanager
def serve_in_thread(app: Any, host: str = "127.0.0.1", port: int = 0, timeout_s: float = 20.0) -> Iterator[str]:
    """Serve `app` with uvicorn in a daemon thread and yield its base URL; port 0 picks a free port."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"uvicorn did not start on {host}:{port} within {timeout_s:.0f} s")
        time.sleep(0.05)
    bound = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{bound}"
    finally:
        server.should_exit = True
        thread.join(10)
