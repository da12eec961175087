"""Phrase-level test queries (PLPNet's phrase metric): the verb-object phrase of each test sentence.

PLPNet (paper, section 4.3) measures phrase-level prediction with verb-object combinations as
queries and the moments where that action happens on that object as ground truth. Here each test
sentence gives one: "a short person turns off the light" -> "turns off the light", true wherever
in the same video anyone turns off the light, whoever does it. A colour in the object phrase
("picks up the green box") stays part of it; the subject's attributes (shirt, size) do not.

>>> entry = {"vid": "v", "duration": 20.0, "actions": [
...     {"verb": "open_door", "object": "door", "attributes": {"shirt": "red"}, "start": 1.0, "end": 3.0},
...     {"verb": "open_door", "object": "door", "attributes": {"shirt": "blue"}, "start": 9.0, "end": 11.0}]}
>>> record = {"qid": "v_q000", "vid": "v", "duration": 20.0, "query": "the person in the red shirt opens the door",
...           "relevant_windows": [[1.0, 3.0]], "phrases": [
...     {"role": "subject", "text": "the person in the red shirt", "words": [0, 6]},
...     {"role": "verb", "text": "opens", "words": [6, 7]}, {"role": "object", "text": "the door", "words": [7, 9]}]}
>>> [(r["query"], r["relevant_windows"]) for r in phrase_queries([entry], [record])]
[('opens the door', [[1.0, 3.0], [9.0, 11.0]])]
"""

from __future__ import annotations

PHRASE_ROLES = ("verb", "object")  # the parts of a sentence that make its phrase-level query


def _action_of(entry: dict, windows: list) -> dict | None:
    wanted = {tuple(w) for w in windows}
    return next((a for a in entry["actions"] if (a["start"], a["end"]) in wanted), None)


def phrase_queries(entries: list[dict], records: list[dict]) -> list[dict]:
    """One record per distinct (video, verb-object phrase) of ``records`` (jsonl test records of the
    videos ``entries`` describe), in the same jsonl form: "query" is the phrase, "relevant_windows"
    every moment of the video where it is true, and "sentence" the qid it was cut from."""
    by_vid = {e["vid"]: e for e in entries}
    out, seen = [], set()
    for record in records:
        words = record["query"].split()
        parts = [p for p in record.get("phrases", ()) if p["role"] in PHRASE_ROLES]
        entry = by_vid.get(record["vid"])
        action = _action_of(entry, record["relevant_windows"]) if entry else None
        if not any(p["role"] == "verb" for p in parts) or action is None:
            continue
        text = " ".join(w for p in sorted(parts, key=lambda p: p["words"][0]) for w in words[slice(*p["words"])])
        if (record["vid"], text) in seen:
            continue
        seen.add((record["vid"], text))
        color = action["attributes"].get("object_color")
        in_phrase = color is not None and color in text.split()
        windows = sorted([a["start"], a["end"]] for a in entry["actions"]
                         if a["verb"] == action["verb"] and a["object"] == action["object"]
                         and (not in_phrase or a["attributes"].get("object_color") == color))
        out.append({"qid": f"{record['qid']}_p", "query": text, "vid": record["vid"], "duration": record["duration"],
                    "relevant_windows": windows, "sentence": record["qid"]})
    return out
