"""`vidseek serve`: the web page and JSON API over one index (``vidseek.serve.app.create_app``), run by uvicorn.

FastAPI and uvicorn (the ``serve`` extra) are imported inside the command, so `vidseek --help` and
`vidseek search` neither wait for them nor need them.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from pathlib import Path

import click

from vidseek.cli.common import backend_option, default_index, index_option, shown, user_errors

SERVE_PACKAGES = ("fastapi", "uvicorn")


def is_loopback(host: str) -> bool:
    """Whether ``host`` is an address only this machine can reach.

    >>> is_loopback("127.0.0.1"), is_loopback("::1"), is_loopback("localhost"), is_loopback("0.0.0.0")
    (True, True, True, False)
    """
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def listen(host: str, port: int) -> socket.socket:
    """A socket listening on ``host:port`` (port 0: a free one), or a ClickException that says what to do.

    It is made with the protocol number IPPROTO_TCP, not 0 as ``socket.create_server`` makes it:
    asyncio sets TCP_NODELAY on the connections it accepts only then, and without it each answer on a
    kept-alive connection waits some 40 ms for the client's delayed ACK (Nagle's algorithm)."""
    host = host.strip("[]")
    sock = None
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             proto=socket.IPPROTO_TCP, flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
        return sock
    except OSError as exc:
        if sock is not None:
            sock.close()
        hint = "choose another --port (0 picks a free one)" if getattr(exc, "errno", None) in (98, 48) else \
            "check --host (an address of this machine, e.g. 127.0.0.1 or 0.0.0.0)"
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror or exc}; {hint}") from None


def page_url(host: str, port: int, token: str | None) -> str:
    """The address of the page as a browser opens it (the token in it, when there is one).

    >>> page_url("0.0.0.0", 8000, None).startswith("http://"), page_url("::1", 80, "t")
    (True, 'http://[::1]:80/?token=t')
    """
    host = host.strip("[]")
    if host in ("0.0.0.0", "::"):
        host = socket.gethostname()
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/" + (f"?token={token}" if token else "")


def open_page(url: str) -> None:
    """Open ``url`` in this machine's graphical web browser, or say that there is none. A terminal
    browser (which ``webbrowser`` would run in this very terminal, in front of the server) is never used."""
    import os
    import sys
    import webbrowser

    graphical = sys.platform in ("darwin", "win32") or os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    if graphical and webbrowser.open(url):  # the socket already listens: the browser's request waits for the server
        return
    click.echo("  (no graphical web browser here: open the address above in a browser that reaches this machine)")


@click.command("serve")
@index_option
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Anything but this machine's loopback needs --token.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="Port (0: a free one).")
@click.option("--token", envvar="VIDSEEK_TOKEN", default=None,
              help="A secret every API and media request must carry (or $VIDSEEK_TOKEN); the page is opened "
                   "with ?token=SECRET. Required when --host is not a loopback address.")
@click.option("--insecure-no-token", is_flag=True,
              help="Serve a non-loopback --host without a token: anyone who can reach it sees the library.")
@click.option("--open", "open_browser", is_flag=True, help="Open the page in this machine's web browser.")
@backend_option
def serve_cmd(index_dir: Path | None, host: str, port: int, token: str | None, insecure_no_token: bool,
              open_browser: bool, backend: str) -> None:
    """A web page to search the library and play the moments, and a JSON API for other programs
    (GET /api/search?q=..., /api/videos, /api/media/ID ...; docs/serve.md). Videos that `vidseek index`
    adds while it runs appear without a restart."""
    from vidseek.library.models import missing_packages

    missing = missing_packages(SERVE_PACKAGES)
    if missing:
        raise click.ClickException(f"vidseek serve needs {' and '.join(missing)}, which are not installed: "
                                   "pip install 'vidseek[serve]'")
    if token is not None and not token.strip():
        raise click.BadParameter("the token is empty: give a secret of a few words or random characters",
                                 param_hint="--token")
    loopback = is_loopback(host)
    if not loopback and token is None and not insecure_no_token:
        raise click.BadParameter(
            f"{host} can be reached from other machines: give --token SECRET (or set $VIDSEEK_TOKEN) so that only "
            "those who have it see the library, or --insecure-no-token to let anyone who reaches it in",
            param_hint="--host")
    if insecure_no_token and not loopback and token is None:
        click.echo(f"warning: serving {host} without a token: anyone who can reach this address can search and "
                   "play every video of the library", err=True)
    import uvicorn

    from vidseek.serve.app import LOCAL_HOSTS, create_app

    sock = listen(host, port)
    index_dir = index_dir or default_index()
    hosts = (*LOCAL_HOSTS, host.strip("[]").lower()) if loopback else None
    with user_errors():
        try:
            app = create_app(index_dir, token=token, hosts=hosts, backend=backend)
        except BaseException:
            sock.close()
            raise
    log = logging.getLogger("vidseek.serve")  # "read the index again", refresh failures, unexpected errors
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s vidseek serve: %(message)s", "%H:%M:%S"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    n = app.state.live.call(lambda searcher: len(searcher.videos))
    url = page_url(host, sock.getsockname()[1], token)
    click.echo(f"vidseek serve: {url}\n  index {shown(index_dir)}, {n} videos; press Ctrl+C to stop", err=False)
    if open_browser:
        open_page(url)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on", timeout_graceful_shutdown=5)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn has shut down, then passes Ctrl+C on
        pass
    click.echo("vidseek serve: stopped")
