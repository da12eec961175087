"""The screenshot of docs/serve.png: `vidseek serve` on a library, a search, a result clicked and
played to the end of its moment, in headless Chromium (tests/browser.py).

    python benchmarks/serve_screenshot.py demo-library/index docs/serve.png
    python benchmarks/serve_screenshot.py INDEX OUT.png --query "someone turns off the light" --card 1
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from browser import Chromium  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("index", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--query", default="person opens door")
    parser.add_argument("--card", type=int, default=0, help="which result to play (0: the best)")
    args = parser.parse_args()
    server = subprocess.Popen([sys.executable, "-c", "from vidseek.cli.main import cli; cli()", "serve", "--index",
                               str(args.index), "--port", "0"], stdout=subprocess.PIPE, text=True)
    try:
        url = server.stdout.readline().split()[-1]
        with Chromium(width=1280, height=860) as browser:
            browser.open(f"{url}#q={quote(args.query)}")
            browser.wait(f"document.querySelectorAll('.card').length > {args.card}")
            browser.wait("[...document.querySelectorAll('.card img')].every(i => i.complete)")
            browser.click(f".card[data-index='{args.card}']")
            video = "document.getElementById('video-el')"
            browser.wait(f"{video}.paused && {video}.currentTime > 0 && document.querySelector('#curve polyline') !== null",
                         timeout=60)
            browser.screenshot(args.out)
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
