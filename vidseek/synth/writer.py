"""Writing a dataset: encoded videos, jsonl and Charades-STA annotations, and the manifest.

Layout of OUT_DIR::

    videos/<vid>.mp4                      one file per video (or .mkv / .webm)
    train.jsonl val.jsonl test.jsonl      standard split, one sentence per line; a test sentence also
                                          has "library_windows": every video of the world where it is
                                          true -> its windows (library-wide ground truth)
    comp_train.jsonl comp_val.jsonl comp_test.jsonl comp_test_seen.jsonl   compositional split
    paraphrase_test.jsonl                 the held-out paraphrase bank of the test videos (synonyms,
                                          casual talk, typos, opposites: ``vidseek.synth.paraphrase``)
    phrase_test.jsonl                     the verb-object phrase of each test sentence, true wherever
                                          that action happens in its video (``vidseek.synth.phrases``)
    charades_<split>.txt                  "VID start end##sentence", one line per window
    charades.json                         {vid: {"duration": d}}
    manifest.json                         seed, renderer version, settings, per-video metadata

Every file is written to a temporary name and moved into place, so a crash never leaves a
half-written annotation or video under its final name.
"""

from __future__ import annotations

import json
import os
from fractions import Fraction
from pathlib import Path
from typing import Iterable

import numpy as np

from vidseek.synth.config import CONTAINERS, RENDERER_VERSION, SynthConfig
from vidseek.synth.language import action_record, describe, library_windows, windows
from vidseek.synth.paraphrase import bank
from vidseek.synth.phrases import phrase_queries
from vidseek.synth.splits import COMP_SPLITS, HELDOUT, SPLITS, comp_bucket
from vidseek.synth.video import Video, make_video

FORMATS = {"mp4": "mp4", "mkv": "matroska", "webm": "webm"}  # container -> ffmpeg muxer name


def encode_video(path: Path, frames: Iterable[np.ndarray], fps: float, width: int, height: int,
                 container: str = "mp4", crf: int = 18) -> int:
    """Encode RGB uint8 frames to ``path`` with fixed, single-threaded settings; returns the frame count."""
    import av  # heavy import, only where videos are written

    _, codec, pix_fmt = CONTAINERS[container]
    tmp = path.with_name(f".{path.stem}.partial{path.suffix}")
    n = 0
    with av.open(str(tmp), mode="w", format=FORMATS[container]) as out:
        stream = out.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        stream.codec_context.thread_count = 1
        stream.options = _codec_options(codec, crf)
        for arr in frames:
            frame = av.VideoFrame.from_ndarray(arr, format="rgb24")
            frame.pts = n
            out.mux(stream.encode(frame))
            n += 1
        out.mux(stream.encode(None))
    os.replace(tmp, path)
    return n


def _codec_options(codec: str, crf: int) -> dict[str, str]:
    """Fixed encoder settings. x264's macroblock-tree rate control gave different bitstreams for the
    same frames when several videos were encoded in one process (seen with the bundled libx264,
    core 165), so it is off: the same seed then always decodes to the same frames."""
    if codec == "libx264":
        return {"crf": str(crf), "preset": "veryfast", "threads": "1", "x264-params": "mbtree=0"}
    return {"crf": str(crf), "b": "0", "deadline": "realtime", "cpu-used": "8", "threads": "1"}


def annotate(video: Video, k: int = 3) -> list[dict]:
    """jsonl records for every sentence of a video; identical sentences are written once.

    Each record also carries "comp", its compositional split file (or None), and "meaning", what the
    sentence asserts (``Meaning``); neither is written.
    """
    rng = np.random.default_rng([video.seed, video.index, 3])
    records, seen = [], set()
    for action in video.timeline.actions:
        for q in describe(action, video.scene, rng, k):
            if q.text in seen:
                continue
            seen.add(q.text)
            records.append({
                "qid": f"{video.vid}_q{len(records):03d}",
                "query": q.text,
                "vid": video.vid,
                "duration": round(video.duration, 3),
                "relevant_windows": windows(q.meaning, video.timeline.actions, video.scene),
                "phrases": [{"role": p.role, "text": p.text, "words": list(p.words)} for p in q.phrases],
                "comp": comp_bucket(q.meaning, video.split),
                "meaning": q.meaning,
            })
    return records


def video_entry(video: Video, file_name: str, n_frames: int) -> dict:
    """The manifest's description of one video."""
    sc = video.scene
    people = [{"id": p.pid, "shirt": p.shirt_name, "size": p.size_name, "height_m": round(p.height, 3),
               "in_view": any(m.kind != "absent" for m in video.timeline.motions[p.pid])} for p in sc.people]
    props = [{"id": p.pid, "kind": p.kind, "color": p.color_name} for p in sc.props]
    actions = [action_record(a, sc) for a in video.timeline.actions]
    return {
        "vid": video.vid, "index": video.index, "file": f"videos/{file_name}", "split": video.split,
        "duration": round(video.duration, 3), "fps": video.fps, "n_frames": n_frames,
        "width": video.width, "height": video.height,
        "room": {"wall_texture": sc.wall_texture, "floor_texture": sc.floor_texture,
                 "light_on_at_start": sc.light_on, "door_open_at_start": sc.door_open,
                 "distractors": list(sc.distractors)},
        "people": people, "props": props, "actions": actions,
    }


def render_one(seed: int, index: int, config: SynthConfig, out_dir: str) -> tuple[dict, list[dict]]:
    """Plan, render, encode and annotate one video -> (manifest entry, jsonl records)."""
    from vidseek.synth.render import Renderer

    video = make_video(seed, index, config)
    name = video.vid + config.suffix
    n = encode_video(Path(out_dir) / "videos" / name, Renderer(video).frames(), video.fps,
                     video.width, video.height, config.container, config.crf)
    return video_entry(video, name, n), annotate(video, config.sentences_per_action)


def render_dataset(out_dir: str | os.PathLike, n_videos: int, seed: int = 0, config: SynthConfig | None = None,
                   workers: int = 1, progress: bool = True) -> dict:
    """Render ``n_videos`` videos of dataset ``seed`` with annotations into ``out_dir``; returns the manifest.

    Video i depends only on (seed, i, config): a run with more videos repeats the earlier ones.
    """
    cfg = config or SynthConfig()
    if n_videos < 1:
        raise ValueError(f"n_videos must be >= 1, got {n_videos}")
    out = Path(out_dir)
    (out / "videos").mkdir(parents=True, exist_ok=True)
    results = _render_all(seed, n_videos, cfg, str(out), workers, progress)
    entries = [e for e, _ in results]
    records = [r for _, rs in results for r in rs]
    files = write_annotations(out, entries, records)
    held_out = bank(entries, seed)  # sentences written unlike the templates: for testing only
    _write_text(out / "paraphrase_test.jsonl", "".join(json.dumps(r) + "\n" for r in held_out))
    files["paraphrase_test"] = "paraphrase_test.jsonl"
    tested = {e["vid"] for e in entries if e["split"] == "test"}
    phrases = phrase_queries(entries, [r for r in records if r["vid"] in tested])  # PLPNet's phrase-level metric
    _write_text(out / "phrase_test.jsonl", "".join(json.dumps(r) + "\n" for r in phrases))
    files["phrase_test"] = "phrase_test.jsonl"
    manifest = {
        "renderer_version": RENDERER_VERSION, "seed": seed, "n_videos": n_videos,
        "settings": cfg.to_json(), "heldout_combinations": sorted(list(c) for c in HELDOUT),
        "files": files, "videos": entries,
    }
    _write_text(out / "manifest.json", json.dumps(manifest, indent=1))
    return manifest


def _render_all(seed: int, n: int, cfg: SynthConfig, out: str, workers: int, progress: bool):
    from tqdm import tqdm

    bar = tqdm(total=n, desc="synth", unit="video", disable=not progress)
    if workers <= 1:
        results = []
        for i in range(n):
            results.append(render_one(seed, i, cfg, out))
            bar.update()
    else:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(workers) as pool:
            futures = [pool.submit(render_one, seed, i, cfg, out) for i in range(n)]
            results = []
            for f in futures:
                results.append(f.result())
                bar.update()
    bar.close()
    return results


def write_annotations(out: Path, entries: list[dict], records: list[dict]) -> dict[str, str]:
    """jsonl and Charades-STA files per split plus charades.json; returns {split: file name}."""
    files = {}
    split_of = {e["vid"]: e["split"] for e in entries}
    by_action: dict[tuple, list[dict]] = {}  # (verb, object) -> the videos that have such an action
    for e in entries:
        for kind in {(a["verb"], a["object"]) for a in e["actions"]}:
            by_action.setdefault(kind, []).append(e)
    for r in records:  # the library a world is indexed as is all its videos
        if split_of[r["vid"]] == "test" and "meaning" in r:
            r["library_windows"] = library_windows(r["meaning"], by_action.get((r["meaning"].verb, r["meaning"].obj), []))
    groups = {s: [r for r in records if split_of[r["vid"]] == s] for s in SPLITS}
    groups.update({c: [r for r in records if r["comp"] == c] for c in COMP_SPLITS})
    for name, rs in groups.items():
        lines = [json.dumps({k: v for k, v in r.items() if k not in ("comp", "meaning")}) for r in rs]
        _write_text(out / f"{name}.jsonl", "".join(line + "\n" for line in lines))
        sta = [f"{r['vid']} {s:.2f} {e:.2f}##{r['query']}" for r in rs for s, e in r["relevant_windows"]]
        _write_text(out / f"charades_{name}.txt", "".join(line + "\n" for line in sta))
        files[name] = f"{name}.jsonl"
    durations = {e["vid"]: {"duration": e["duration"]} for e in entries}
    _write_text(out / "charades.json", json.dumps(durations, indent=1))
    return files


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(text)
    os.replace(tmp, path)
