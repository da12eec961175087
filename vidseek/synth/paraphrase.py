"""The held-out paraphrase bank: sentences about a world's actions written differently from the
training templates (``vidseek.synth.language``), for testing only.

Four kinds of record, each true of the windows of its action in its video (``relevant_windows``):

- ``synonym``: other verbs and phrasings ("someone flings the ball", "a person plops down into
  the chair", "the person switches the light off");
- ``casual``: the same meaning wrapped in casual or long talk ("ok so this is where the person
  opens the door");
- ``typo``: a template sentence with one or two misspelt words ("person opns the dor");
- ``opposite``: minimal pairs that differ by one word (on/off, open/close, sit/stand, in/out,
  pick up/put down), written for videos that hold both actions of the pair; the record also
  gives the windows of the opposite action (``opposite_windows``), so a test can tell whether a
  model tells them apart.

Records are made from a world's manifest entries (``bank``), so the bank of any world can be
made again without rendering, and ``vidseek synth`` writes it for the test videos as
``paraphrase_test.jsonl``.

>>> entry = {"vid": "v", "duration": 10.0, "split": "test", "actions": [
...     {"verb": "turn_on_light", "object": "light", "attributes": {}, "start": 1.0, "end": 2.0},
...     {"verb": "turn_off_light", "object": "light", "attributes": {}, "start": 6.0, "end": 7.0}]}
>>> [(r["kind"], r["query"]) for r in bank([entry], seed=0) if r["kind"] == "opposite"]
[('opposite', 'the person turns off the light'), ('opposite', 'the person turns on the light')]
"""

from __future__ import annotations

import hashlib

import numpy as np

KINDS = ("synonym", "casual", "typo", "opposite")

# Held-out wordings per verb; {obj} is "the <kind>" of the action's prop. Words and phrasings the
# training templates do not use, as people type them.
SYNONYMS: dict[str, tuple[str, ...]] = {
    "walk_in": ("someone steps into the room", "a person arrives in the room", "the person comes in"),
    "walk_out": ("someone steps out of the room", "a person departs from the room", "the person goes out"),
    "open_door": ("someone pulls open the door", "a person gets the door open", "the person unlatches the door"),
    "close_door": ("someone slams the door", "a person swings the door closed", "the person closes up the door"),
    "turn_on_light": ("someone switches the light on", "a person puts the light on", "the person hits the light switch"),
    "turn_off_light": ("someone switches the light off", "a person puts the light out", "the person shuts off the light"),
    "pick_up": ("someone scoops up {obj}", "a person picks {obj} up off the floor", "the person collects {obj}"),
    "put_down": ("someone drops {obj} on the floor", "a person leaves {obj} on the floor", "the person sets {obj} on the ground"),
    "sit_down": ("someone settles into the chair", "a person plops down into the chair", "the person has a seat"),
    "stand_up": ("someone rises up off the chair", "a person climbs out of the chair", "the person gets to their feet"),
    "throw": ("someone chucks {obj}", "a person flings {obj}", "the person lobs {obj} across the room"),
    "wave": ("someone waves hi", "a person raises a hand and waves", "the person gives a wave"),
}
# One template-style sentence per verb: the base of the casual, typo and opposite records.
PLAIN = {
    "walk_in": "the person walks into the room", "walk_out": "the person walks out of the room",
    "open_door": "the person opens the door", "close_door": "the person closes the door",
    "turn_on_light": "the person turns on the light", "turn_off_light": "the person turns off the light",
    "pick_up": "the person picks up {obj}", "put_down": "the person puts down {obj}",
    "sit_down": "the person sits down on the chair", "stand_up": "the person stands up from the chair",
    "throw": "the person throws {obj}", "wave": "the person waves",
}
CASUAL = ("ok so this is where {s}", "{s} at some point, that is the bit i need", "i am looking for when {s}",
          "find me the part where {s} please", "{s}, i think")
OPPOSITES = (("turn_on_light", "turn_off_light"), ("open_door", "close_door"), ("sit_down", "stand_up"),
             ("walk_in", "walk_out"), ("pick_up", "put_down"))
OPPOSITE_OF = {a: b for pair in OPPOSITES for a, b in (pair, pair[::-1])}
# each letter -> the key to its right on a QWERTY row (the last key of a row -> the one to its left)
KEYBOARD_NEIGHBOURS = {c: n for c, n in zip("qwertyuiop" "asdfghjkl" "zxcvbnm", "wertyuiopo" "sdfghjklk" "xcvbnmn")}


def typo(word: str, rng: np.random.Generator) -> str:
    """One edit a hurried typist makes: two neighbouring letters swapped, one dropped, one doubled,
    or one replaced by its keyboard neighbour.

    >>> typo("light", np.random.default_rng(0)) != "light"
    True
    """
    i = int(rng.integers(1, len(word) - 1))  # the first letter is usually right
    kind = int(rng.integers(4))
    if kind == 0 and word[i] != word[i + 1]:
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    if kind == 1:
        return word[:i] + word[i + 1:]
    if kind == 2:
        return word[:i] + word[i] + word[i:]
    return word[:i] + KEYBOARD_NEIGHBOURS.get(word[i], word[i]) + word[i + 1:]


def _misspell(sentence: str, rng: np.random.Generator) -> str:
    words = sentence.split()
    long = [i for i, w in enumerate(words) if len(w) >= 4]
    for i in rng.choice(long, size=min(len(long), int(rng.integers(1, 3))), replace=False):
        words[i] = typo(words[i], rng)
    return " ".join(words)


def _windows(entry: dict, verb: str, obj: str | None) -> list[list[float]]:
    return sorted([a["start"], a["end"]] for a in entry["actions"] if a["verb"] == verb and a["object"] == obj)


def bank(entries: list[dict], seed: int) -> list[dict]:
    """The paraphrase records of the test videos among manifest ``entries`` (deterministic in ``seed``)."""
    records = []
    for entry in entries:
        if entry.get("split") != "test":
            continue
        rng = np.random.default_rng([seed, int.from_bytes(hashlib.sha256(entry["vid"].encode()).digest()[:8], "big"), 5])
        out: dict[str, dict] = {}

        def add(kind: str, text: str, verb: str, obj: str | None, **extra) -> None:
            if text not in out:
                out[text] = {"qid": f"{entry['vid']}_p{len(out):03d}", "query": text, "vid": entry["vid"],
                             "duration": entry["duration"], "relevant_windows": _windows(entry, verb, obj),
                             "kind": kind, "verb": verb, **extra}

        kinds = {(a["verb"], a["object"]) for a in entry["actions"]}
        for verb, obj in sorted(kinds, key=str):
            fill = {"obj": f"the {obj}"}
            synonyms = SYNONYMS[verb]
            add("synonym", synonyms[int(rng.integers(len(synonyms)))].format(**fill), verb, obj)
            plain = PLAIN[verb].format(**fill)
            add("casual", CASUAL[int(rng.integers(len(CASUAL)))].format(s=plain), verb, obj)
            add("typo", _misspell(plain, rng), verb, obj)
            opposite = OPPOSITE_OF.get(verb)
            # the opposite action on the same object (entering and leaving: on whatever the manifest names)
            others = sorted(w for v, o in kinds if v == opposite and (o == obj or opposite in ("walk_in", "walk_out"))
                            for w in _windows(entry, v, o))
            if others:
                add("opposite", plain, verb, obj, opposite_windows=others)
        records += out.values()
    return records
