"""One table of graphs and backends: export, the engine, benchmarks and the CLI all read it.

A grounding model is cut into four graphs. The video side (frame_encoder, video_encoder) runs once
per video at index time; the query side (text_encoder, head) runs per query. Each graph's inputs
and outputs are named here, per model family, so nothing is picked by position.

A zero-shot CLIP bundle (model ``clip-zero-shot``, family ``zero-shot``) has two graphs only: the
CLIP image tower as frame_encoder and the CLIP text tower as text_encoder, whose one output is the
L2-normalised query embedding ``retrieval``. It has no video_encoder and no head: the engine
normalises the frame embeddings itself and finds spans in the frame-query similarity curve
(``vidseek.engine.decode.similarity_span``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GraphSpec:
    name: str
    stage: str  # "index" (once per video) or "query" (per query)
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    dynamic: dict[str, tuple[str, ...]]  # tensor name -> symbolic name of each axis ("batch", "time", ...) or "" for fixed


EXCL_NAMES = tuple(f"excl-{o}-{v}{p}" for o in ("clf", "reg") for v in "12" for p in "abc")
MODEL_NAMES = EXCL_NAMES + ("plpnet",)  # the trainable models
ZERO_SHOT_MODEL = "clip-zero-shot"  # a CLIP model used as it is, without a trained head (never trained)
KNOWN_MODELS = MODEL_NAMES + (ZERO_SHOT_MODEL,)


@dataclass(frozen=True)
class Family:
    """What a family of models puts in its bundle, and how the runtime reads it: every
    family-dependent decision (which text output the head reads, how spans are decoded, whether
    phrases exist) is a field here, never a comparison of model names."""

    name: str  # "excl" | "plpnet" | "zero-shot"
    head_text: str | None  # the text encoder output the head reads ("sentence" | "phrases"); None: no head
    spans: str  # how outputs become spans: "start-end" (ExCL), "regression" (PLPNet), "similarity" (zero-shot)
    phrases: bool  # grounds each phrase of the query too (PLPNet's phrase spans)
    trainable: bool  # trained by `vidseek train` (the zero-shot CLIP model is used as it is)
    defaults: tuple[tuple[str, object], ...] = ()  # training defaults of the family (learning rate, batch, sampler)


FAMILIES = {
    "excl": Family("excl", "sentence", "start-end", phrases=False, trainable=True,
                   defaults=(("lr", 1e-3), ("batch_size", 32), ("sampler", "random"))),
    "plpnet": Family("plpnet", "phrases", "regression", phrases=True, trainable=True,
                     defaults=(("lr", 4e-4), ("batch_size", 100), ("sampler", "cluster"))),
    "zero-shot": Family("zero-shot", None, "similarity", phrases=False, trainable=False),
}


def family(model_name: str) -> Family:
    """The ``Family`` of a registry model name; ValueError for a name the registry does not know.

    >>> family("excl-clf-2b").head_text, family("plpnet").phrases, family("clip-zero-shot").spans
    ('sentence', True, 'similarity')
    """
    if model_name == ZERO_SHOT_MODEL:
        return FAMILIES["zero-shot"]
    if model_name == "plpnet":
        return FAMILIES["plpnet"]
    if model_name in EXCL_NAMES:
        return FAMILIES["excl"]
    raise ValueError(f"unknown model {model_name!r}; expected one of {', '.join(KNOWN_MODELS)}")


def objective(model_name: str) -> str | None:
    """An ExCL model's training objective, "clf" or "reg", from its name (None for other families).

    >>> objective("excl-reg-1a"), objective("plpnet")
    ('reg', None)
    """
    return model_name.split("-")[1] if family(model_name).name == "excl" else None


FRAME_GRAPH = GraphSpec("frame_encoder", "index", ("pixels",), ("frame_features",),
                   {"pixels": ("frames", "", "", ""), "frame_features": ("frames", "")})
_VIDEO = GraphSpec("video_encoder", "index", ("features", "video_mask"), ("video_states",),
                   {"features": ("batch", "time", ""), "video_mask": ("batch", "time"), "video_states": ("batch", "time", "")})

_TEXT_IN = {"input_ids": ("batch", "words"), "attention_mask": ("batch", "words")}
_TEXT = {
    "excl": GraphSpec("text_encoder", "query", ("input_ids", "attention_mask"), ("word_features", "sentence"),
                      {**_TEXT_IN, "word_features": ("batch", "words", ""), "sentence": ("batch", "")}),
    "plpnet": GraphSpec("text_encoder", "query", ("input_ids", "attention_mask"),
                        ("word_features", "sentence", "phrases", "word_att"),
                        {**_TEXT_IN, "word_features": ("batch", "words", ""), "sentence": ("batch", ""),
                         "phrases": ("batch", "", ""), "word_att": ("batch", "", "words")}),
}
_ZERO_SHOT_TEXT = GraphSpec("text_encoder", "query", ("input_ids", "attention_mask"), ("retrieval",),
                            {**_TEXT_IN, "retrieval": ("batch", "")})
_HEAD_IN = {"video_states": ("batch", "time", ""), "video_mask": ("batch", "time")}
_HEAD = {
    "excl": GraphSpec("head", "query", ("video_states", "video_mask", "sentence"), ("start_logits", "end_logits"),
                      {**_HEAD_IN, "sentence": ("batch", ""), "start_logits": ("batch", "time"),
                       "end_logits": ("batch", "time")}),
    "plpnet": GraphSpec("head", "query", ("video_states", "video_mask", "phrases"),
                        ("span", "phrase_spans", "frame_att", "phrase_frame_att", "phrase_weights"),
                        {**_HEAD_IN, "phrases": ("batch", "", ""), "span": ("batch", ""),
                         "phrase_spans": ("batch", "", ""), "frame_att": ("batch", "time"),
                         "phrase_frame_att": ("batch", "", "time"), "phrase_weights": ("batch", "")}),
}

GRAPH_NAMES = ("frame_encoder", "video_encoder", "text_encoder", "head")  # pipeline order


def _with_retrieval(spec: GraphSpec, output: str, axes: tuple[str, ...]) -> GraphSpec:
    return GraphSpec(spec.name, spec.stage, spec.inputs, spec.outputs + (output,), {**spec.dynamic, output: axes})


def graphs_for(model_name: str, with_frame_encoder: bool, retrieval: bool = False) -> list[GraphSpec]:
    """The graphs of a model's bundle, in pipeline order.

    With a retrieval embedding, the video encoder also gives per-step projections ``retrieval_steps``
    (a window's embedding is their normalised mean) and the text encoder a normalised ``retrieval``.
    The zero-shot model always has a frame encoder and a retrieval embedding, and no other graphs.
    """
    kind = family(model_name).name
    if kind == "zero-shot":
        if not with_frame_encoder:
            raise ValueError(f"{ZERO_SHOT_MODEL} reads video files through its CLIP image tower: it needs the frame encoder")
        return [FRAME_GRAPH, _ZERO_SHOT_TEXT]
    video, text = _VIDEO, _TEXT[kind]
    if retrieval:
        video = _with_retrieval(video, "retrieval_steps", ("batch", "time", ""))
        text = _with_retrieval(text, "retrieval", ("batch", ""))
    return ([FRAME_GRAPH] if with_frame_encoder else []) + [video, text, _HEAD[kind]]


def graph_spec(model_name: str, graph: str, retrieval: bool = False) -> GraphSpec:
    """The spec of one graph of a model's bundle (``graph`` one of ``GRAPH_NAMES``)."""
    for spec in graphs_for(model_name, with_frame_encoder=True, retrieval=retrieval):
        if spec.name == graph:
            return spec
    raise ValueError(f"a bundle of model {model_name} has no {graph} graph")


# Export formats and runtime backends ("gpu": needs an NVIDIA GPU). Availability is checked at run time by the engine.
FORMATS = ("onnx", "tensorrt")
BACKENDS = {
    "onnxruntime": {"format": "onnx", "providers": ("CPUExecutionProvider",), "gpu": False},
    "onnxruntime-cuda": {"format": "onnx", "providers": ("CUDAExecutionProvider", "CPUExecutionProvider"), "gpu": True},
    "onnxruntime-tensorrt": {"format": "onnx", "gpu": True,
                             "providers": ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")},
    "tensorrt": {"format": "tensorrt", "providers": (), "gpu": True},
}
