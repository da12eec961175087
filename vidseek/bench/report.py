"""The benchmark's report: machine and library versions, ratios, plain-text tables and the plot."""

from __future__ import annotations

import contextlib
import os
import platform
from importlib import metadata
from pathlib import Path

from vidseek.bench.backends import LABELS
from vidseek.bench.stages import INDEX_STAGES, QUERY_STAGES

# distributions whose versions the report records (the first installed name of each group)
VERSIONED = {
    "numpy": ("numpy",), "onnxruntime": ("onnxruntime", "onnxruntime-gpu"), "faiss": ("faiss-cpu", "faiss-gpu-cu12",
                                                                                      "faiss-gpu", "faiss"),
    "tokenizers": ("tokenizers",), "torch": ("torch",), "tensorrt": ("tensorrt",), "av": ("av",),
    "decord": ("decord",), "matplotlib": ("matplotlib",),
}


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo, else what ``platform`` knows."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine_info() -> dict:
    """CPU, cores usable by this process, memory, OS, Python and the load average at the start."""
    memory = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = int(line.split()[1]) * 1024
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count()
    load = None
    with contextlib.suppress(OSError, AttributeError):
        load = [round(x, 2) for x in os.getloadavg()]
    return {"cpu": cpu_name(), "cores": cores, "memory_bytes": memory, "platform": platform.platform(),
            "python": platform.python_version(), "load_average": load}


def library_versions() -> dict[str, str | None]:
    """Installed versions of the libraries on the measured paths (None: not installed)."""
    out: dict[str, str | None] = {}
    for key, names in VERSIONED.items():
        out[key] = None
        for name in names:
            with contextlib.suppress(metadata.PackageNotFoundError):
                out[key] = metadata.version(name)
                break
    return out


# ---- ratios -------------------------------------------------------------------------------------
def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None


def compute_ratios(report: dict) -> dict:
    """Side-by-side ratios from one report (each > 1 means the second named is faster):

    ``graph_eager_over_ort``: per graph, PyTorch eager p50 / ONNX Runtime CPU p50;
    ``search_eager_over_ort``: per library size, end-to-end p50 eager / ONNX Runtime;
    ``naive_over_two_stage``: per library size, naive search p50 / two-stage search p50 (ONNX Runtime);
    ``scale_p50_over_smallest``: per library size, two-stage p50 / p50 at the smallest size, per backend;
    ``flat_over_ann``: per library size and ANN setting, Flat p50 / that index's p50 (with its recall).
    """
    out: dict = {"graph_eager_over_ort": {}, "search_eager_over_ort": {}, "naive_over_two_stage": {},
                 "scale_p50_over_smallest": {}, "flat_over_ann": {}}
    graphs = report.get("graphs", {})
    for graph, ort in graphs.get("onnxruntime", {}).items():
        eager = graphs.get("pytorch", {}).get(graph)
        if eager:
            out["graph_eager_over_ort"][graph] = _ratio(eager["p50"], ort["p50"])
    libraries = report.get("libraries", [])
    smallest = libraries[0] if libraries else None
    for lib in libraries:
        size = str(lib["videos"])
        query = lib.get("query", {})
        ort = query.get("onnxruntime", {}).get("end_to_end", {}).get("p50")
        eager = query.get("pytorch", {}).get("end_to_end", {}).get("p50")
        if ort and eager:
            out["search_eager_over_ort"][size] = _ratio(eager, ort)
        if ort and lib.get("naive"):
            out["naive_over_two_stage"][size] = _ratio(lib["naive"]["p50_ms"], ort)
        for backend, q in query.items():
            base = smallest.get("query", {}).get(backend, {}).get("end_to_end", {}).get("p50")
            out["scale_p50_over_smallest"].setdefault(backend, {})[size] = _ratio(q["end_to_end"]["p50"], base)
        rows = lib.get("faiss") or []
        flat = next((r for r in rows if r["kind"] == "flat"), None)
        if flat:
            out["flat_over_ann"][size] = {r["index"]: {"speedup": _ratio(flat["p50"], r["p50"]),
                                                       **{k: v for k, v in r.items() if k.startswith("recall@")}}
                                          for r in rows if r["kind"] != "flat"}
    return out


# ---- tables -------------------------------------------------------------------------------------
def _table(headers: list[str], rows: list[list], title: str, markdown: bool = False, left: int = 1) -> str:
    """A titled table; the first ``left`` columns are text (left-aligned), the others numbers."""
    cells = [[("-" if v is None else str(v)) for v in row] for row in rows]
    if markdown:
        rule = ["---" if i < left else "---:" for i in range(len(headers))]
        lines = [f"**{title}**", "", "| " + " | ".join(headers) + " |", "| " + " | ".join(rule) + " |"]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in cells]
        return "\n".join(lines) + "\n"
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]

    def line(values: list[str]) -> str:
        return "  ".join(v.ljust(w) if i < left else v.rjust(w) for i, (v, w) in enumerate(zip(values, widths))).rstrip()

    head = line(headers)
    return "\n".join([title, head, "-" * len(head), *(line(r) for r in cells)]) + "\n"


def _ms(stats: dict | None, key: str = "p50") -> str | None:
    if not stats or stats.get(key) is None:
        return None
    value = stats[key]
    return f"{value:.3f}" if value < 1 else f"{value:.2f}" if value < 100 else f"{value:.0f}"


def _mb(n: int | None) -> str | None:
    return None if n is None else f"{n / 2**20:.1f}"


def _disk(files: dict) -> str:
    """GB the index takes on disk: whole blocks allocated, and the files' sizes (reports before
    ``allocated`` was measured have the sizes only)."""
    sizes = sum(v for k, v in files.items() if k != "allocated")
    return f"{files['allocated'] / 1e9:.2f} ({sizes / 1e9:.2f})" if "allocated" in files else f"{sizes / 1e9:.2f}"


def _label(backend: str) -> str:
    return LABELS.get(backend, backend)


def render_tables(report: dict, markdown: bool = False) -> str:
    """Every table of a report as plain text, or as Markdown (latencies in ms)."""
    parts = []
    m, b = report["machine"], report["bundle"]
    parts.append(f"machine: {m['cpu']}, {m['cores']} cores, load average {m.get('load_average')} at start; "
                 f"bundle: {b['model']} ({b['fingerprint']}), hidden {b.get('hidden')}, "
                 f"graphs {', '.join(f'{g} {_mb(n)} MB' for g, n in b['graph_bytes'].items())}\n")
    rows = [[_label(s["name"]), "ok" + (f" ({s['detail']})" if s.get("detail") else "") if s["available"]
             else f"unavailable: {s['reason']}"] for s in report["backends"]]
    parts.append(_table(["backend", "status"], rows, "Backends", markdown, left=2))
    graphs = report.get("graphs") or {}
    if graphs:
        order = ["frame_encoder", "video_encoder", "text_encoder", "head"]
        names = sorted({g for per in graphs.values() for g in per}, key=order.index)
        rows = [[_label(backend)] + [f"{_ms(per.get(g))} / {_ms(per.get(g), 'p95')}" if per.get(g) else None
                                     for g in names] for backend, per in graphs.items()]
        ratios = report.get("ratios", {}).get("graph_eager_over_ort", {})
        if ratios:
            rows.append(["eager / ORT CPU (p50)"] + [ratios.get(g) for g in names])
        first = next(iter(graphs.values()))
        shapes = "; ".join(f"{g} {' '.join('x'.join(map(str, v)) for v in first[g]['shapes'].values())}"
                           for g in names if g in first)
        parts.append(_table(["backend"] + [f"{g} p50 / p95" for g in names], rows,
                            f"Graphs alone (ms per call; inputs {shapes})", markdown))
    index = report.get("index") or {}
    if index.get("skipped"):
        parts.append(f"Index time: skipped ({index['skipped']})\n")
    elif index:
        rows = [[_label(backend)] + [_ms(r[s]) for s in INDEX_STAGES] +
                [_ms(r["total"]), r["videos_per_s"], r["rtf"]] + [r[s]["rtf"] for s in INDEX_STAGES]
                for backend, r in index.items()]
        first = next(iter(index.values()))
        parts.append(_table(["backend", "decode", "frame enc", "video enc", "total", "videos/s", "x real time",
                             "decode x rt", "frame enc x rt", "video enc x rt"], rows,
                            f"Index time per video (p50 ms; {first['videos']} videos, {first['video_seconds']:.0f} s of "
                            f"video, {first['steps']} steps)", markdown))
    libraries = report.get("libraries") or []
    ratios = report.get("ratios", {})
    if libraries:
        rows = []
        for lib in libraries:
            for backend, q in lib.get("query", {}).items():
                st = q["stages"]
                rows.append([lib["videos"], _label(backend)] + [f"{_ms(st[s])} / {_ms(st[s], 'p95')}" for s in QUERY_STAGES] +
                            [_ms(q["end_to_end"]), _ms(q["end_to_end"], "p95"), _ms(q["end_to_end"], "p99"),
                             f"{q['end_to_end']['per_s']:.1f}", f"{q['first_ms']:.0f}"])
        parts.append(_table(["videos", "backend"] + [f"{s} p50 / p95" for s in QUERY_STAGES] +
                            ["end to end p50", "p95", "p99", "queries/s", "first query"], rows,
                            "Search per query (ms; stages from instrumented searches, end to end from uninstrumented ones)",
                            markdown, left=2))
        rows = []
        for lib in libraries:
            info, files, rss = lib["library"], lib["files"], lib["rss"]
            ort = lib.get("query", {}).get("onnxruntime", {})
            own = next((r for r in lib.get("faiss") or [] if r.get("library")), {})
            rows.append([lib["videos"], info["clips"], lib.get("index"), lib.get("open_s"), _mb(rss.get("open")),
                         _mb(rss.get("after_queries")), _mb(files["states_cache"]), _mb(files["clips_cache"]),
                         _mb(files["clips_faiss"]), _mb(files["catalog"]), _disk(files),
                         _ms(ort.get("end_to_end")), _ms(ort.get("end_to_end"), "p95"),
                         ratios.get("scale_p50_over_smallest", {}).get("onnxruntime", {}).get(str(lib["videos"])),
                         own.get("recall@50"), ort.get("candidate_videos"), ort.get("head_rows"), ort.get("head_steps")])
        parts.append(_table(["videos", "clips", "FAISS index", "open s", "RSS open MB", "RSS queried MB",
                             "states MB", "clips MB", "clips.faiss MB", "catalog MB", "disk GB (files)", "ORT p50 ms", "p95",
                             "x smallest", "recall@50", "candidate videos", "head rows", "head steps"], rows,
                            "Scale (synthetic libraries; RSS of a fresh process holding the ONNX Runtime sessions)",
                            markdown, left=3))
        rows = []
        for lib in libraries:
            naive, ort = lib.get("naive"), lib.get("query", {}).get("onnxruntime", {}).get("end_to_end")
            if naive and ort:
                rows.append([lib["videos"], _ms(ort), f"{naive['p50_ms']:.0f}", naive["videos_measured"],
                             "yes" if naive["extrapolated"] else "no",
                             ratios.get("naive_over_two_stage", {}).get(str(lib["videos"]))])
        if rows:
            parts.append(_table(["videos", "two-stage p50", "naive p50", "naive measured on", "extrapolated",
                                 "naive / two-stage"], rows,
                                "Two-stage search vs the head on every video (ONNX Runtime CPU, ms)", markdown))
        for lib in libraries:
            faiss_rows = lib.get("faiss") or []
            if faiss_rows:
                recalls = [k for k in faiss_rows[0] if k.startswith("recall@")]
                rows = [[r["index"], _ms(r), _ms(r, "p95"), r.get("build_s")] + [r[k] for k in recalls]
                        for r in faiss_rows]
                parts.append(_table(["index", "p50", "p95", "build s"] + recalls, rows,
                                    f"FAISS at {lib['videos']} videos ({lib['library']['clips']} clips; ms per query, "
                                    "one at a time; recall against exact search)", markdown))
        for lib in libraries:
            if lib.get("errors"):
                parts.append(f"errors at {lib['videos']} videos: " +
                             "; ".join(f"{k}: {v}" for k, v in lib["errors"].items()) + "\n")
    return "\n".join(parts)


# ---- plot ---------------------------------------------------------------------------------------
def plot(report: dict, path: str | Path) -> str | None:
    """Write a PNG of search latency (p50, p95 dashed) against library size per backend, and memory
    and index size against library size. Returns None, or why no plot was written."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install 'vidseek[plot]'): no plot written"
    libraries = report.get("libraries") or []
    if not libraries:
        return "no library sizes were measured: no plot written"
    sizes = [lib["videos"] for lib in libraries]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4), dpi=100)
    backends = [s["name"] for s in report["backends"] if any(s["name"] in lib.get("query", {}) for lib in libraries)]
    for backend in backends:
        pts = [(lib["videos"], lib["query"][backend]["end_to_end"]) for lib in libraries if backend in lib.get("query", {})]
        line, = left.plot([p[0] for p in pts], [p[1]["p50"] for p in pts], marker="o", label=f"{LABELS[backend]} p50")
        left.plot([p[0] for p in pts], [p[1]["p95"] for p in pts], linestyle="--", color=line.get_color(), alpha=0.6,
                  label=f"{LABELS[backend]} p95")
    naive = [(lib["videos"], lib["naive"]["p50_ms"]) for lib in libraries if lib.get("naive")]
    if naive:
        left.plot([p[0] for p in naive], [p[1] for p in naive], marker="x", color="grey", label="naive (head on every video)")
    left.set(xscale="log", yscale="log", xlabel="library size (videos)", ylabel="search latency (ms)",
             title="Search latency, one query at a time")
    left.grid(True, which="both", alpha=0.3)
    left.legend(fontsize=7)
    mib = 2**20
    right.plot(sizes, [lib["rss"].get("after_queries", lib["rss"]["open"]) / mib for lib in libraries], marker="o",
               label="process RSS after queries")
    right.plot(sizes, [lib["files"]["clips_faiss"] / mib for lib in libraries], marker="s", label="clips.faiss")
    right.plot(sizes, [lib["files"]["states_cache"] / mib for lib in libraries], marker="^", label="states cache (disk)")
    if all("allocated" in lib["files"] for lib in libraries):
        right.plot(sizes, [lib["files"]["allocated"] / mib for lib in libraries], marker="v", label="whole index (disk)")
    right.set(xscale="log", yscale="log", xlabel="library size (videos)", ylabel="MiB", title="Memory and index size")
    right.grid(True, which="both", alpha=0.3)
    right.legend(fontsize=7)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return None
