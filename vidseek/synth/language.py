"""Sentences about actions: templates with paraphrases and attributes, their phrase structure, and
what each sentence means (so every window it truly describes can be found).

>>> subject, _ = SUBJECTS[5]
>>> meaning = Meaning("open_door", "door", shirt="red")
>>> q = build_query([subject] + PREDICATES["open_door"][1], {"shirt": "red"}, meaning)
>>> q.text
'the person in the red shirt pulls the door open'
>>> [(p.role, p.words) for p in q.phrases]
[('subject', (0, 6)), ('verb', (6, 7)), ('object', (7, 9)), ('verb', (9, 10))]
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from vidseek.synth.timeline import Action
from vidseek.synth.world import Scene

Part = tuple[str, str]  # (role, text with {shirt} / {size} / {color} / {kind} slots); "{obj}" = object phrase
OBJ: Part = ("object", "{obj}")

# Who: (parts, attributes the subject needs). Attributes pick out one person when the video has two.
SUBJECTS: list[tuple[Part, tuple[str, ...]]] = [
    (("subject", "person"), ()),
    (("subject", "someone"), ()),
    (("subject", "a person"), ()),
    (("subject", "the person"), ()),
    (("subject", "somebody"), ()),
    (("subject", "the person in the {shirt} shirt"), ("shirt",)),
    (("subject", "a person in a {shirt} shirt"), ("shirt",)),
    (("subject", "someone wearing a {shirt} shirt"), ("shirt",)),
    (("subject", "the {size} person"), ("size",)),
    (("subject", "a {size} person"), ("size",)),
    (("subject", "the {size} person in the {shirt} shirt"), ("size", "shirt")),
]

# How often a sentence names no attribute, the shirt, the size, or both.
SUBJECT_MIX = ((0.55, 0.25, 0.10, 0.10), ((), ("shirt",), ("size",), ("size", "shirt")))

# What: at least three paraphrases per verb, as (role, text) parts.
PREDICATES: dict[str, list[list[Part]]] = {
    "walk_in": [
        [("verb", "walks into"), ("object", "the room")],
        [("verb", "enters"), ("object", "the room")],
        [("verb", "comes into"), ("object", "the room")],
        [("verb", "walks in")],
    ],
    "walk_out": [
        [("verb", "walks out of"), ("object", "the room")],
        [("verb", "leaves"), ("object", "the room")],
        [("verb", "exits"), ("object", "the room")],
        [("verb", "walks out")],
    ],
    "open_door": [
        [("verb", "opens"), ("object", "the door")],
        [("verb", "pulls"), ("object", "the door"), ("verb", "open")],
        [("verb", "swings"), ("object", "the door"), ("verb", "open")],
        [("verb", "opens"), ("object", "a door")],
    ],
    "close_door": [
        [("verb", "closes"), ("object", "the door")],
        [("verb", "shuts"), ("object", "the door")],
        [("verb", "pushes"), ("object", "the door"), ("verb", "shut")],
        [("verb", "closes"), ("object", "a door")],
    ],
    "turn_on_light": [
        [("verb", "turns on"), ("object", "the light")],
        [("verb", "switches on"), ("object", "the light")],
        [("verb", "turns on"), ("object", "the lights")],
        [("verb", "flips on"), ("object", "the light switch")],
    ],
    "turn_off_light": [
        [("verb", "turns off"), ("object", "the light")],
        [("verb", "switches off"), ("object", "the light")],
        [("verb", "turns off"), ("object", "the lights")],
        [("verb", "flips off"), ("object", "the light switch")],
    ],
    "pick_up": [
        [("verb", "picks up"), OBJ],
        [("verb", "lifts"), OBJ],
        [("verb", "grabs"), OBJ, ("modifier", "from the floor")],
        [("verb", "takes"), OBJ],
    ],
    "put_down": [
        [("verb", "puts down"), OBJ],
        [("verb", "sets down"), OBJ],
        [("verb", "places"), OBJ, ("modifier", "on the floor")],
        [("verb", "lowers"), OBJ, ("modifier", "to the floor")],
    ],
    "sit_down": [
        [("verb", "sits on"), ("object", "the chair")],
        [("verb", "sits down on"), ("object", "the chair")],
        [("verb", "takes"), ("object", "a seat")],
        [("verb", "sits down")],
    ],
    "stand_up": [
        [("verb", "stands up from"), ("object", "the chair")],
        [("verb", "gets up from"), ("object", "the chair")],
        [("verb", "rises from"), ("object", "the chair")],
        [("verb", "gets out of"), ("object", "the chair")],
    ],
    "throw": [
        [("verb", "throws"), OBJ],
        [("verb", "tosses"), OBJ],
        [("verb", "throws"), OBJ, ("modifier", "across the room")],
        [("verb", "hurls"), OBJ],
    ],
    "wave": [
        [("verb", "waves")],
        [("verb", "waves"), ("object", "a hand")],
        [("verb", "waves"), ("modifier", "at the camera")],
        [("verb", "waves"), ("modifier", "hello")],
    ],
}

# Object phrases for boxes and balls: (text, uses the colour attribute).
OBJECT_PHRASES = [("a {kind}", False), ("the {kind}", False), ("a {color} {kind}", True), ("the {color} {kind}", True)]


@dataclass(frozen=True)
class Meaning:
    """What a sentence asserts; an action matches when it agrees on every field that is set."""

    verb: str
    obj: str | None  # object kind
    obj_color: str | None = None
    shirt: str | None = None
    size: str | None = None

    def matches(self, action: Action, scene: Scene) -> bool:
        return self.holds(action_record(action, scene))

    def holds(self, record: dict) -> bool:
        """Whether the sentence is true of an action as the manifest records it (``action_record``)."""
        if record["verb"] != self.verb or record["object"] != self.obj:
            return False
        attrs = record["attributes"]
        return all(want in (None, attrs.get(key)) for key, want in
                   (("object_color", self.obj_color), ("shirt", self.shirt), ("size", self.size)))

    def combos(self) -> set[tuple[str, str, str]]:
        """Compositional units: ("verb_obj", verb, object) and ("adj_noun", adjective, noun)."""
        out = {("verb_obj", self.verb, self.obj or "-")}
        if self.obj_color:
            out.add(("adj_noun", self.obj_color, self.obj))
        if self.shirt:
            out.add(("adj_noun", self.shirt, "shirt"))
        return out


@dataclass(frozen=True)
class Phrase:
    role: str  # "subject" | "verb" | "object" | "modifier"
    text: str
    words: tuple[int, int]  # [start, end) word indices into text.split()


@dataclass(frozen=True)
class Query:
    text: str
    phrases: tuple[Phrase, ...]
    meaning: Meaning


def build_query(parts: list[Part], slots: dict, meaning: Meaning) -> Query:
    """Join (role, text) parts into a sentence with its phrase spans (word indices, end exclusive)."""
    words, phrases = [], []
    for role, text in parts:
        toks = _articles(text.format(**slots).split())
        phrases.append(Phrase(role, " ".join(toks), (len(words), len(words) + len(toks))))
        words.extend(toks)
    return Query(" ".join(words), tuple(phrases), meaning)


def _articles(words: list[str]) -> list[str]:
    """'a orange box' -> 'an orange box'."""
    return ["an" if w == "a" and i + 1 < len(words) and words[i + 1][0] in "aeiou" else w
            for i, w in enumerate(words)]


def describe(action: Action, scene: Scene, rng: np.random.Generator, k: int) -> list[Query]:
    """Up to k distinct sentences for one action, mixing plain and attribute-bearing paraphrases."""
    person = scene.people[action.actor]
    prop = scene.props[action.prop] if action.prop is not None else None
    out: dict[str, Query] = {}
    for _ in range(12 * k):
        if len(out) >= k:
            break
        q = _one_sentence(action, person, prop, rng)
        out.setdefault(q.text, q)
    return list(out.values())


def _one_sentence(action: Action, person, prop, rng: np.random.Generator) -> Query:
    attrs = SUBJECT_MIX[1][int(rng.choice(len(SUBJECT_MIX[0]), p=SUBJECT_MIX[0]))]
    pool = [s for s in SUBJECTS if s[1] == attrs]
    subject, _ = pool[int(rng.integers(len(pool)))]
    predicate = PREDICATES[action.verb][int(rng.integers(len(PREDICATES[action.verb])))]
    slots = {"shirt": person.shirt_name, "size": person.size_name}
    obj_color = None
    if prop is not None:
        text, colored = OBJECT_PHRASES[int(rng.integers(len(OBJECT_PHRASES)))]
        slots.update(kind=prop.kind, color=prop.color_name, obj=text.format(kind=prop.kind, color=prop.color_name))
        obj_color = prop.color_name if colored else None
    meaning = Meaning(action.verb, action.obj, obj_color,
                      person.shirt_name if "shirt" in attrs else None, person.size_name if "size" in attrs else None)
    return build_query([subject] + predicate, slots, meaning)


def action_record(action: Action, scene: Scene) -> dict:
    """An action as the manifest records it: verb, object, actor, prop, the attributes a sentence can
    name (shirt, size, object_color), start and end."""
    person = scene.people[action.actor]
    attrs = {"shirt": person.shirt_name, "size": person.size_name}
    if action.prop is not None:
        attrs["object_color"] = scene.props[action.prop].color_name
    return {"actor": action.actor, "verb": action.verb, "object": action.obj, "prop": action.prop,
            "attributes": attrs, "start": action.start, "end": action.end}


def windows(meaning: Meaning, actions: list[Action], scene: Scene) -> list[list[float]]:
    """Every [start, end] in the video that the sentence truly describes, sorted."""
    return sorted([a.start, a.end] for a in actions if meaning.matches(a, scene))


def library_windows(meaning: Meaning, videos: list[dict]) -> dict[str, list[list[float]]]:
    """Every video of a library (manifest entries) where the sentence is true -> its windows, sorted."""
    out = {}
    for video in videos:
        found = sorted([a["start"], a["end"]] for a in video["actions"] if meaning.holds(a))
        if found:
            out[video["vid"]] = found
    return out


def sentence_words() -> list[str]:
    """Every word a sentence of the synthetic world can use (templates with every slot filled), sorted:
    the vocabulary of a model trained on this world only."""
    from vidseek.vocabulary import query_words
    from vidseek.synth.palette import BALL_COLORS, BOX_COLORS, SHIRT_COLORS

    texts = [text for (_, text), _ in SUBJECTS] + [text for parts in PREDICATES.values() for p in parts for _, text in p]
    texts += [text for text, _ in OBJECT_PHRASES] + ["an"]
    slots = {"shirt": SHIRT_COLORS, "size": ("tall", "short"), "color": BOX_COLORS + BALL_COLORS, "kind": ("box", "ball")}
    words = set()
    for text in texts:
        words.update(query_words(re.sub(r"\{\w+\}", " ", text)))
        for slot, values in slots.items():
            if "{" + slot + "}" in text:
                words.update(values)
    return sorted(words)
