"""Readers for moment-retrieval annotation files (Charades-STA, ActivityNet Captions, TACoS, QVHighlights).

Every reader returns a :class:`SampleList`: a plain ``list[Sample]`` that also carries a
:class:`ReadReport` (``samples.report``) saying how many queries the file held and what happened
to each of them.

Bad-data policy (the same for every format)
-------------------------------------------
* **Structural problems raise** :class:`AnnotationError` (a ``ValueError``) naming the file and the
  line or video: a malformed line, a non-numeric time, ``timestamps`` and ``sentences`` of different
  lengths, a missing ``duration``/``fps`` key, a video with no entry in the Charades durations file,
  a duplicate ``qid``, malformed ``phrases``. These mean the file is not what the caller thinks.
* **Per-query data noise is skipped and counted** (``report.skipped[reason]``), with one summary
  :class:`AnnotationWarning` per file. Reasons: ``empty_query`` (blank sentence),
  ``start_after_end`` (start > end), ``zero_length`` (start == end),
  ``starts_after_video`` (start >= duration), ``bad_duration`` (duration <= 0 or not finite),
  ``no_window`` (a jsonl record with an empty ``relevant_windows``).
  A multi-window sample with one bad window is skipped whole: its ground truth is not trustworthy.
* **Small overshoots are clipped and counted** (``report.clipped``): an end past the video's
  duration is set to the duration, a negative start to 0 (what VSLNet does for all three classic
  datasets; ActivityNet and Charades-STA end times often pass the duration by up to ~1.5 s).
  Clipping is logged at INFO level, not warned, since it is routine for these files.

``report.queries == report.kept + sum(report.skipped.values())`` always holds.

Query ids
---------
Files with ids (QVHighlights) keep them as strings. Otherwise the id is ``"<file-stem>:<n>"``
with ``n`` the 1-based line number for line formats (Charades-STA) and the 0-based position of the
query in file order for JSON formats (ActivityNet, TACoS). Skipped queries keep their number, so
ids do not move when the skip policy changes.
"""

from __future__ import annotations

import difflib
import json
import logging
import math
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

log = logging.getLogger(__name__)

DATASETS = ("charades-sta", "activitynet", "tacos", "qvhighlights", "jsonl")


@dataclass(frozen=True)
class Sample:
    """One query with its ground-truth moments."""

    qid: str | int  # unique within a file; a jsonl file's own qids keep their type (1 stays 1, "1" stays "1")
    vid: str  # video id, the key of its features
    query: str  # natural-language query, surrounding whitespace stripped
    duration: float  # video length in seconds
    windows: tuple[tuple[float, float], ...]  # ground-truth spans in seconds, 0 <= start < end <= duration
    phrases: tuple[dict, ...] = ()  # {"role": str, "text": str, "words": [start, end)} into query.split()

    def __post_init__(self) -> None:
        if not self.windows:
            raise ValueError(f"sample {self.qid!r}: expected at least one window, got none")
        for start, end in self.windows:
            if not 0.0 <= start < end <= self.duration:
                raise ValueError(
                    f"sample {self.qid!r}: window ({start}, {end}) is not inside [0, {self.duration}] "
                    "with start < end"
                )


class AnnotationError(ValueError):
    """An annotation file that cannot be read as the format it was given as."""


class AnnotationWarning(UserWarning):
    """Summary of the queries a reader skipped; filter it with ``warnings.simplefilter``."""


@dataclass
class ReadReport:
    """What a reader did with one file."""

    path: str  # the annotation file
    queries: int = 0  # queries found in the file (lines, sentences or records)
    kept: int = 0  # samples returned
    clipped: int = 0  # returned samples whose windows were clipped into [0, duration]
    skipped: Counter = field(default_factory=Counter)  # reason -> number of queries dropped
    clusters: tuple[int, ...] | None = None  # PLPNet cluster id per returned sample, when the file has them

    @property
    def n_skipped(self) -> int:
        """Total number of skipped queries."""
        return sum(self.skipped.values())

    def summary(self) -> str:
        """One line: queries read, kept, clipped and skipped by reason."""
        reasons = ", ".join(f"{n} {reason}" for reason, n in sorted(self.skipped.items())) or "none"
        return (
            f"{self.path}: {self.queries} queries, kept {self.kept} "
            f"({self.clipped} clipped to the video), skipped {self.n_skipped} ({reasons})"
        )


class SampleList(list):
    """A ``list[Sample]`` with the :class:`ReadReport` of the file it came from (``.report``)."""

    report: ReadReport


# --------------------------------------------------------------------------- shared checks


def _check_window(start: float, end: float, duration: float) -> tuple[tuple[float, float] | None, str]:
    """Validate one window; return ``(window, "ok" | "clipped")`` or ``(None, skip_reason)``.

    >>> _check_window(2.0, 31.5, 30.0)
    ((2.0, 30.0), 'clipped')
    >>> _check_window(31.0, 35.0, 30.0)
    (None, 'starts_after_video')
    """
    if start > end:
        return None, "start_after_end"
    if start == end:
        return None, "zero_length"
    if start >= duration:
        return None, "starts_after_video"
    clipped_start, clipped_end = max(start, 0.0), min(end, duration)
    status = "clipped" if (clipped_start, clipped_end) != (start, end) else "ok"
    return (clipped_start, clipped_end), status


class _Collector:
    """Applies the bad-data policy to raw queries and builds the SampleList and its report."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.samples = SampleList()
        self.report = ReadReport(path=str(path))
        self.clusters: list[int] = []

    def add(
        self,
        qid: str,
        vid: str,
        query: str,
        duration: float,
        windows: Iterable[tuple[float, float]],
        phrases: tuple[dict, ...] = (),
        cluster: int | None = None,
    ) -> None:
        """Count one query from the file and keep, clip or skip it."""
        self.report.queries += 1
        query = query.strip()
        if not query:
            self.report.skipped["empty_query"] += 1
            return
        if not (math.isfinite(duration) and duration > 0):
            self.report.skipped["bad_duration"] += 1
            return
        checked, clipped = [], False
        for start, end in windows:
            window, status = _check_window(start, end, duration)
            if window is None:
                self.report.skipped[status] += 1
                return
            checked.append(window)
            clipped |= status == "clipped"
        self.samples.append(Sample(qid, vid, query, duration, tuple(checked), phrases))
        self.report.kept += 1
        self.report.clipped += clipped
        if cluster is not None:
            self.clusters.append(cluster)

    def finish(self) -> SampleList:
        """Attach the report, warn once if anything was skipped, and return the samples."""
        if self.clusters:
            self.report.clusters = tuple(self.clusters)
        if self.report.n_skipped:
            warnings.warn(self.report.summary(), AnnotationWarning, stacklevel=3)
        elif self.report.clipped:
            log.info(self.report.summary())
        self.samples.report = self.report
        return self.samples


def _number(value: Any, where: str, what: str) -> float:
    """Parse a finite float or raise an AnnotationError naming ``where``."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise AnnotationError(f"{where}: {what} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise AnnotationError(f"{where}: {what} must be finite, got {value!r}")
    return number


def _load_json(path: Path) -> Any:
    """Load a JSON file, turning syntax errors into AnnotationError with the file name."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise AnnotationError(f"{path}: not valid JSON ({e})") from None


def _video_dict(path: Path, data: Any, expected: str) -> dict:
    """Check that a JSON annotation file is a ``{video: {...}}`` mapping."""
    if not isinstance(data, dict):
        raise AnnotationError(f"{path}: expected a JSON object {expected}, got {type(data).__name__}")
    return data


def _paired(path: Path, vid: str, item: Any, keys: tuple[str, ...]) -> tuple[list, list]:
    """Return ``(timestamps, sentences)`` of one video entry after checking keys and lengths."""
    if not isinstance(item, dict):
        raise AnnotationError(f"{path}: video {vid!r}: expected an object, got {type(item).__name__}")
    missing = [k for k in keys if k not in item]
    if missing:
        raise AnnotationError(f"{path}: video {vid!r}: missing key(s) {missing}; it has {sorted(item)}")
    timestamps, sentences = item["timestamps"], item["sentences"]
    if len(timestamps) != len(sentences):
        raise AnnotationError(
            f"{path}: video {vid!r}: {len(timestamps)} timestamps but {len(sentences)} sentences"
        )
    return timestamps, sentences


def _pair(value: Any, where: str) -> tuple[float, float]:
    """Parse a ``[start, end]`` pair of numbers."""
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise AnnotationError(f"{where}: expected a [start, end] pair, got {value!r}")
    return _number(value[0], where, "start"), _number(value[1], where, "end")


# --------------------------------------------------------------------------- Charades-STA


def _load_durations(path: Path, annotation: Path) -> dict[str, float]:
    """Read a Charades durations file: ``{vid: {"duration": s}}`` (``{vid: s}`` also accepted)."""
    if not path.is_file():
        raise FileNotFoundError(
            f"no durations file at {path} for {annotation}; pass durations= the path of a JSON "
            '{vid: {"duration": seconds}} file (VSLNet\'s charades.json)'
        )
    data = _video_dict(path, _load_json(path), '{vid: {"duration": seconds}}')
    table = {}
    for vid, entry in data.items():
        value = entry.get("duration") if isinstance(entry, dict) else entry
        table[vid] = _number(value, f"{path}: video {vid!r}", "duration")
    return table


def _parse_charades_line(line: str, where: str) -> tuple[str, float, float, int | None, str]:
    """Parse ``VID START END##sentence`` or PLPNet's ``VID START END CLASS##sentence``."""
    head, sep, sentence = line.partition("##")
    fields = head.split()
    if not sep or len(fields) not in (3, 4):
        raise AnnotationError(
            f"{where}: expected 'VID START END##sentence' (or PLPNet's 'VID START END CLASS##sentence'), "
            f"got {line[:100]!r}"
        )
    start, end = _number(fields[1], where, "start"), _number(fields[2], where, "end")
    cluster = None
    if len(fields) == 4:
        try:
            cluster = int(fields[3])
        except ValueError:
            raise AnnotationError(f"{where}: PLPNet class must be an integer, got {fields[3]!r}") from None
    return fields[0], start, end, cluster, sentence


def read_charades_sta(path: str | Path, durations: str | Path | None = None) -> SampleList:
    """Read a Charades-STA file: one ``VID START END##sentence`` query per line, times in seconds.

    PLPNet's variant ``VID START END CLASS##sentence`` (CLASS: the sentence's k-means cluster id,
    ``0`` in its test/phrase files) is read too; the classes land in ``report.clusters``, one per
    returned sample. A file must use one variant throughout.

    Durations come from ``charades.json`` next to ``path`` unless ``durations`` names another JSON
    file ``{vid: {"duration": seconds}}``. A video missing from it is an :class:`AnnotationError`.
    """
    path = Path(path)
    table = _load_durations(Path(durations) if durations is not None else path.parent / "charades.json", path)
    rows, n_fields = [], None
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            row = _parse_charades_line(line.rstrip("\n"), where)
            fields = 3 if row[3] is None else 4
            if n_fields is not None and fields != n_fields:
                raise AnnotationError(
                    f"{where}: line has {fields} fields before '##' but earlier lines have {n_fields}; "
                    "a file must be all 'VID START END' or all PLPNet 'VID START END CLASS'"
                )
            n_fields = fields
            rows.append((lineno, *row))
    missing = sorted({row[1] for row in rows} - table.keys())
    if missing:
        raise AnnotationError(
            f"{path}: {len(missing)} video(s) have no duration in the durations file "
            f"(e.g. {', '.join(missing[:5])}); pass durations= a JSON file that covers them"
        )
    collector = _Collector(path)
    for lineno, vid, start, end, cluster, sentence in rows:
        collector.add(f"{path.stem}:{lineno}", vid, sentence, table[vid], [(start, end)], cluster=cluster)
    return collector.finish()


# --------------------------------------------------------------------------- ActivityNet, TACoS


def read_activitynet(path: str | Path) -> SampleList:
    """Read ActivityNet Captions (``train.json``, ``val_1.json``, ``val_2.json``).

    Format: ``{video: {"duration": s, "timestamps": [[start, end], ...], "sentences": [...]}}``,
    times in seconds. PLPNet's train file adds ``"class": [cluster id per sentence]``; when present
    the ids land in ``report.clusters``.
    """
    path = Path(path)
    data = _video_dict(path, _load_json(path), '{video: {"duration", "timestamps", "sentences"}}')
    collector, ordinal = _Collector(path), 0
    for vid, item in data.items():
        timestamps, sentences = _paired(path, vid, item, ("duration", "timestamps", "sentences"))
        where = f"{path}: video {vid!r}"
        duration = _number(item["duration"], where, "duration")
        classes = item.get("class")
        if classes is not None and len(classes) != len(sentences):
            raise AnnotationError(f"{where}: {len(classes)} classes but {len(sentences)} sentences")
        for i, (stamp, sentence) in enumerate(zip(timestamps, sentences)):
            cluster = None if classes is None else int(classes[i])
            window = _pair(stamp, f"{where}, sentence {i}")
            collector.add(f"{path.stem}:{ordinal}", vid, sentence, duration, [window], cluster=cluster)
            ordinal += 1
    return collector.finish()


def read_tacos(path: str | Path) -> SampleList:
    """Read TACoS (``train/val/test.json``) and convert frame indices to seconds.

    Format: ``{video: {"timestamps": [[start_frame, end_frame], ...], "sentences": [...],
    "fps": f, "num_frames": n}}``. Seconds are ``frame / fps`` and ``duration = num_frames / fps``.
    A trailing ``.avi`` is dropped from video ids (``s30-d52.avi`` -> ``s30-d52``), as VSLNet does,
    so ids match per-video feature files.
    """
    path = Path(path)
    data = _video_dict(path, _load_json(path), '{video: {"timestamps", "sentences", "fps", "num_frames"}}')
    collector, ordinal = _Collector(path), 0
    for key, item in data.items():
        timestamps, sentences = _paired(path, key, item, ("timestamps", "sentences", "fps", "num_frames"))
        where = f"{path}: video {key!r}"
        fps = _number(item["fps"], where, "fps")
        if fps <= 0:
            raise AnnotationError(f"{where}: fps must be > 0, got {item['fps']!r}")
        duration = _number(item["num_frames"], where, "num_frames") / fps
        vid = key[:-4] if key.endswith(".avi") else key
        for i, (stamp, sentence) in enumerate(zip(timestamps, sentences)):
            start, end = _pair(stamp, f"{where}, sentence {i}")
            collector.add(f"{path.stem}:{ordinal}", vid, sentence, duration, [(start / fps, end / fps)])
            ordinal += 1
    return collector.finish()


# --------------------------------------------------------------------------- jsonl (QVHighlights, own)


def _parse_phrases(value: Any, n_words: int, where: str) -> tuple[dict, ...]:
    """Validate ``[{"role", "text", "words": [start, end)}]`` against a query of ``n_words`` words."""
    if not isinstance(value, list):
        raise AnnotationError(f"{where}: phrases must be a list, got {type(value).__name__}")
    phrases = []
    for j, p in enumerate(value):
        ok = (
            isinstance(p, dict)
            and isinstance(p.get("role"), str)
            and isinstance(p.get("text"), str)
            and isinstance(p.get("words"), (list, tuple))
            and len(p["words"]) == 2
            and all(isinstance(w, int) and not isinstance(w, bool) for w in p["words"])
        )
        if not ok:
            raise AnnotationError(
                f'{where}: phrase {j} must be {{"role": str, "text": str, "words": [start, end]}}, got {p!r}'
            )
        start, end = p["words"]
        if not 0 <= start < end <= n_words:
            raise AnnotationError(
                f"{where}: phrase {j} words [{start}, {end}) must lie inside the query's {n_words} words"
            )
        phrases.append({"role": p["role"], "text": p["text"], "words": [start, end]})
    return tuple(phrases)


def _jsonl_record(line: str, where: str) -> dict:
    """Decode one jsonl line and check the keys every record needs."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as e:
        raise AnnotationError(f"{where}: not valid JSON ({e})") from None
    if not isinstance(record, dict):
        raise AnnotationError(f"{where}: expected a JSON object, got {type(record).__name__}")
    missing = [k for k in ("query", "vid", "duration", "relevant_windows") if k not in record]
    if missing:
        raise AnnotationError(f"{where}: missing key(s) {missing}; it has {sorted(record)}")
    if not isinstance(record["query"], str):
        raise AnnotationError(f"{where}: query must be a string, got {record['query']!r}")
    if not isinstance(record["relevant_windows"], list):
        raise AnnotationError(f"{where}: relevant_windows must be a list of [start, end] pairs")
    return record


def read_jsonl(path: str | Path) -> SampleList:
    """Read QVHighlights / Lighthouse jsonl, also the project's synthetic datasets.

    One JSON object per line: ``qid`` (optional; ``"<stem>:<line>"`` when absent), ``query``,
    ``vid``, ``duration`` and ``relevant_windows`` (``[[start, end], ...]`` in seconds), plus
    optional ``phrases`` (``[{"role", "text", "words": [start, end)}]``, word indices into
    ``query.split()``). Other keys (saliency scores, clip ids) are ignored. A record with no
    windows is skipped as ``no_window``; a repeated ``qid`` is an error.
    """
    path = Path(path)
    collector, seen = _Collector(path), set()
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            record = _jsonl_record(line, where)
            qid = record["qid"] if "qid" in record else f"{path.stem}:{lineno}"
            if isinstance(qid, bool) or not isinstance(qid, (int, str)):
                raise AnnotationError(f"{where}: 'qid' must be an integer or a string, got {qid!r}")
            if qid in seen:
                raise AnnotationError(f"{where}: qid {qid!r} appears more than once in the file")
            seen.add(qid)
            windows = [_pair(w, where) for w in record["relevant_windows"]]
            phrases = _parse_phrases(record.get("phrases", []), len(record["query"].split()), where)
            duration = _number(record["duration"], where, "duration")
            if not windows:
                collector.report.queries += 1
                collector.report.skipped["no_window"] += 1
                continue
            collector.add(qid, str(record["vid"]), record["query"], duration, windows, phrases)
    return collector.finish()


# --------------------------------------------------------------------------- dispatch

_READERS = {
    "charades-sta": read_charades_sta,
    "activitynet": read_activitynet,
    "tacos": read_tacos,
    "qvhighlights": read_jsonl,
    "jsonl": read_jsonl,
}


def read_annotations(path: str | Path, dataset: str, durations: str | Path | None = None) -> SampleList:
    """Read ``path`` with the reader for ``dataset`` (one of :data:`DATASETS`).

    ``durations`` is only meaningful for ``"charades-sta"`` (see :func:`read_charades_sta`).
    """
    if dataset not in _READERS:
        close = difflib.get_close_matches(dataset, DATASETS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {', '.join(DATASETS)}{hint}")
    if dataset == "charades-sta":
        return read_charades_sta(path, durations=durations)
    if durations is not None:
        raise ValueError(
            f"durations= is only used by 'charades-sta'; {dataset!r} files carry their own durations"
        )
    return _READERS[dataset](path)
