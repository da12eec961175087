"""`vidseek serve` under load: HTTP search at 1, 4 and 16 concurrent clients against in-process
``Index.search`` in the same run, on a 1k-video library, and the time to first frame of a result.

    python benchmarks/serve_load.py                        # 12 s per client count (36 s of HTTP load)
    python benchmarks/serve_load.py --seconds 20 --json-out benchmarks/results/serve_load.json

1. The library: 1,000 synthetic videos written by the scale benchmark's writer
   (``vidseek.bench.library``: catalog, float16 states, clip embeddings and FAISS index of the
   built-in bundle's shapes, nothing decoded), kept in --work-dir and reused.
2. In-process: ``Index.search(query, top_k=10)`` over a list of queries, one at a time, for
   --seconds before the HTTP load and again after it (both are reported, and pooled).
3. HTTP: ``vidseek serve --index LIB --port 0`` in a child process; N client threads, each with
   its own keep-alive ``httpx.Client``, send ``GET /api/search?q=...&top_k=10`` back to back for
   --seconds. Latency is what the client sees (send to parsed JSON); an error is any status but
   200, a body without moments, or an exception. The server answers searches one at a time
   (``vidseek.serve.live``), so with N clients a request waits for those ahead of it.
4. Time to first frame, on a small real library (synthetic videos rendered once, indexed with the
   built-in bundle) served by a second ``vidseek serve``: (a) in headless Chromium, from a click on
   a result card to the first frame of the moment presented (``requestVideoFrameCallback`` after
   the seek), one card per video so that every video is loaded cold; (b) without a browser, the
   time to fetch the file with a Range request and decode the picture at the moment's start with PyAV.

The machine and the load average are printed; the two cores of the machine the figures in
docs/benchmarks.md come from are shared by the server, the clients and (in 4) the browser.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from vidseek.bench.report import cpu_name

ROOT = Path(__file__).resolve().parents[1]
QUERIES = ["person opens door", "someone turns off the light", "a person sits down on the chair",
           "the person picks up the red box", "a man walks to the window", "someone closes the door",
           "person waves", "a woman puts the ball on the table", "the person stands up", "turn on the light",
           "someone walks in", "the person throws the ball"]
CLIENTS = (1, 4, 16)


def percentiles(seconds: list[float]) -> dict:
    x = np.asarray(seconds) * 1e3
    return {"n": int(x.size), "p50_ms": round(float(np.percentile(x, 50)), 2),
            "p99_ms": round(float(np.percentile(x, 99)), 2), "mean_ms": round(float(x.mean()), 2)}


# ---- the libraries --------------------------------------------------------------------------------
def big_library(work: Path, videos: int) -> Path:
    from vidseek.bench.library import LibrarySpec, synthetic_library
    from vidseek.engine.bundle import load_bundle
    from vidseek.library.models import resolve_model

    folder = work / f"serve-{videos}"
    info = synthetic_library(folder, load_bundle(resolve_model("builtin")), LibrarySpec(videos=videos),
                             progress=lambda n, total: print(f"  {n}/{total} videos written", file=sys.stderr))
    print(f"library: {info['videos']} videos, {info['clips']} clips, {info['index']} "
          f"({'reused' if info['reused'] else 'written'})", file=sys.stderr)
    return folder


def real_library(work: Path, videos: int) -> Path:
    """A small library of rendered videos (once) and its index: the index folder."""
    from vidseek import Index, VidseekError
    from vidseek.synth.config import SynthConfig
    from vidseek.synth.writer import render_dataset

    folder = work / "serve-real"
    if not (folder / "manifest.json").is_file():
        render_dataset(folder, videos, seed=7, config=SynthConfig(min_duration=10.0, max_duration=30.0,
                                                                  split=(0.0, 0.0, 1.0)), workers=2)
    with Index(folder / "index") as index:
        try:
            index.add(folder / "videos", model="builtin")
        except VidseekError:  # indexed with another bundle (the built-in one was retrained): again
            index.add(folder / "videos", model="builtin", rebuild=True)
    return folder / "index"


# ---- the server -----------------------------------------------------------------------------------
class Server:
    """``vidseek serve --port 0`` in a child process; ``url`` once it listens."""

    def __init__(self, index_dir: Path):
        self.proc = subprocess.Popen([sys.executable, "-c", "from vidseek.cli.main import cli; cli()", "serve",
                                      "--index", str(index_dir), "--port", "0"], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("vidseek serve: "):
            raise RuntimeError(f"vidseek serve did not start: {line}{self.proc.stderr.read()}")
        self.url = line.split()[-1].rstrip("/")

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


# ---- search load ----------------------------------------------------------------------------------
def in_process(index_dir: Path, seconds: float) -> list[float]:
    from vidseek import Index

    out = []
    with Index(index_dir) as index:
        for q in QUERIES:  # warm-up: sessions, memory maps
            index.search(q, top_k=10)
        stop, k = time.monotonic() + seconds, 0
        while time.monotonic() < stop:
            t0 = time.perf_counter()
            index.search(QUERIES[k % len(QUERIES)], top_k=10)
            out.append(time.perf_counter() - t0)
            k += 1
    return out


def http_load(url: str, clients: int, seconds: float) -> dict:
    import httpx

    latencies: list[list[float]] = [[] for _ in range(clients)]
    took: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    with httpx.Client(base_url=url, timeout=120) as warm:
        for q in QUERIES:
            warm.get("/api/search", params={"q": q, "top_k": 10}).raise_for_status()
    start = threading.Barrier(clients + 1)

    def client(i: int) -> None:
        with httpx.Client(base_url=url, timeout=120) as c:
            c.get("/").raise_for_status()  # the connection is open before the clock starts
            start.wait()
            k, stop = i, time.monotonic() + seconds
            while time.monotonic() < stop:
                t0 = time.perf_counter()
                try:
                    r = c.get("/api/search", params={"q": QUERIES[k % len(QUERIES)], "top_k": 10})
                    body = r.json()
                    ok = r.status_code == 200 and "moments" in body
                except Exception:  # noqa: BLE001 (any failure is an error of the load test)
                    ok = False
                dt = time.perf_counter() - t0
                if ok:
                    latencies[i].append(dt)
                    took[i].append(body["took_ms"] / 1e3)
                else:
                    errors[i] += 1
                k += clients

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    flat = [x for per in latencies for x in per]
    return {"clients": clients, "seconds": round(wall, 1), "errors": sum(errors), "queries_per_s": round(len(flat) / wall, 2),
            **percentiles(flat), "server_took": percentiles([x for per in took for x in per])}


# ---- time to first frame --------------------------------------------------------------------------
MEASURE_JS = """
new Promise((resolve) => {
  const v = document.getElementById('video-el');
  let done = false;
  const finish = (how) => { if (!done) { done = true; resolve([performance.now() - t0, how]); } };
  v.addEventListener('seeked', () => {
    if ('requestVideoFrameCallback' in v) v.requestVideoFrameCallback(() => finish('frame'));
    else finish('seeked');
  }, {once: true});
  setTimeout(() => finish('timeout'), 15000);
  const t0 = performance.now();
  document.querySelectorAll('.card')[%d].click();
})
"""


def first_frames_in_browser(url: str) -> dict:
    sys.path.insert(0, str(ROOT / "tests"))
    from browser import Chromium, find_chromium

    if find_chromium() is None:
        return {"skipped": "no chromium on PATH"}
    with Chromium() as browser:
        browser.open(url + "/#q=person%20opens%20door")
        browser.wait("document.querySelectorAll('.card').length > 0 || !document.getElementById('no-match').hidden")
        browser.evaluate("search(0)")  # the page's own search, every candidate shown: more videos to click
        browser.wait("document.querySelectorAll('.card').length > 1")
        moments = browser.evaluate("state.moments")
        seen, times, how = set(), [], set()
        for i, m in enumerate(moments):
            if m["video_id"] in seen:
                continue
            seen.add(m["video_id"])
            ms, kind = browser.evaluate(MEASURE_JS % i)
            times.append(ms / 1e3)
            how.add(kind)
            browser.wait("!document.getElementById('video-el').seeking")
    return {"how": sorted(how), "videos": len(times), **percentiles(times)}


def first_frames_by_range(url: str, index_dir: Path) -> dict:
    import av
    import httpx

    from vidseek import Index

    with Index(index_dir) as index:
        moments = index.search("person opens door", top_k=20, min_score=0)
        ids = {v.path: v.id for v in index.videos("ok")}
    times, seen = [], set()
    with httpx.Client(base_url=url, timeout=60) as c:
        for m in moments:
            if m.video in seen:
                continue
            seen.add(m.video)
            t0 = time.perf_counter()
            data = c.get(f"/api/media/{ids[m.video]}", headers={"Range": "bytes=0-"}).content
            with av.open(io.BytesIO(data)) as container:
                stream = container.streams.video[0]
                container.seek(int(m.start / stream.time_base), stream=stream, backward=True)
                for frame in container.decode(stream):
                    if frame.time is not None and frame.time >= m.start - 1e-3:
                        break
            times.append(time.perf_counter() - t0)
    return {"videos": len(times), **percentiles(times)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=1000, help="videos in the library searched")
    parser.add_argument("--seconds", type=float, default=12.0, help="seconds of load per client count")
    parser.add_argument("--work-dir", default=str(Path.home() / ".cache" / "vidseek-bench"))
    parser.add_argument("--json-out", default=str(ROOT / "benchmarks" / "results" / "serve_load.json"))
    args = parser.parse_args()
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    report = {"machine": cpu_name(), "cpus": os.cpu_count(), "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
              "videos": args.videos, "seconds_per_phase": args.seconds, "queries": QUERIES}
    print(f"machine: {report['machine']}, load average {report['load_average_at_start']}", file=sys.stderr)
    lib = big_library(work, args.videos)
    server = Server(lib)
    try:
        before = in_process(lib, args.seconds)
        report["http"] = []
        for n in CLIENTS:
            report["http"].append(http_load(server.url, n, args.seconds))
            print(f"  {n} clients: {report['http'][-1]}", file=sys.stderr)
        after = in_process(lib, args.seconds)
    finally:
        server.close()
    report["in_process"] = {"before": percentiles(before), "after": percentiles(after), "all": percentiles(before + after)}
    base = report["in_process"]["all"]["p50_ms"]
    for row in report["http"]:
        row["p50_ratio"] = round(row["p50_ms"] / base, 2)
        row["p99_ratio"] = round(row["p99_ms"] / report["in_process"]["all"]["p99_ms"], 2)
    real = real_library(work, 8)
    server = Server(real)
    try:
        report["first_frame_browser"] = first_frames_in_browser(server.url)
        report["first_frame_range"] = first_frames_by_range(server.url, real)
    finally:
        server.close()
    report["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json_out).write_text(json.dumps(report, indent=2) + "\n")
    print(markdown(report))
    return 0


def markdown(r: dict) -> str:
    ip = r["in_process"]
    lines = [f"machine: {r['machine']} ({r['cpus']} cores), load average at start {r['load_average_at_start']}, "
             f"at end {r['load_average_at_end']}; "
             f"{r['videos']} videos; {r['seconds_per_phase']:g} s per phase", "",
             "| searches | clients | queries | errors | queries/s | p50 ms | p99 ms | p50 / in-process | p99 / in-process | server p50 ms |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
             f"| in-process `Index.search` | 1 | {ip['all']['n']} | 0 | {1e3 / ip['all']['mean_ms']:.1f} | "
             f"{ip['all']['p50_ms']} | {ip['all']['p99_ms']} | 1.00 | 1.00 | |"]
    for h in r["http"]:
        lines.append(f"| HTTP `GET /api/search` | {h['clients']} | {h['n']} | {h['errors']} | {h['queries_per_s']} | "
                     f"{h['p50_ms']} | {h['p99_ms']} | {h['p50_ratio']} | {h['p99_ratio']} | {h['server_took']['p50_ms']} |")
    lines += ["", f"in-process before the HTTP load: p50 {ip['before']['p50_ms']} ms, after: {ip['after']['p50_ms']} ms", ""]
    b, g = r["first_frame_browser"], r["first_frame_range"]
    if "skipped" in b:
        lines.append(f"time to first frame in a browser: skipped ({b['skipped']})")
    else:
        lines.append(f"time to first frame in headless Chromium ({', '.join(b['how'])}; {b['videos']} videos, each cold): "
                     f"p50 {b['p50_ms']} ms, p99 {b['p99_ms']} ms")
    lines.append(f"Range request of the file + PyAV decode of the moment's first picture ({g['videos']} videos): "
                 f"p50 {g['p50_ms']} ms, p99 {g['p99_ms']} ms")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
