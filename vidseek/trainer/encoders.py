"""Frame encoders: per-frame features for the grounding models.

Two encoders are built here and chosen by name (``FRAME_ENCODERS``, ``build_frame_encoder``):

  builtin[:CKPT.safetensors]  a small CNN (~460k parameters) over 112x84 frames, trainable jointly with
                              a grounding model; without CKPT, a fixed seeded random initialisation;
                              builtin:BUNDLE_DIR reads the CNN back from a bundle's frame_encoder.onnx
  clip[:ID_OR_PATH]           the image tower of a CLIP model (transformers), from a local folder saved
                              with ``save_pretrained`` or a hub id (default openai/clip-vit-base-patch32)

The third kind, features already on disk (I3D / C3D / CLIP arrays), is read by
``vidseek.trainer.data.features``. Each encoder maps pixels ``(N, 3, H, W)``, preprocessed per its
``FrameSpec`` (``vidseek.engine.preprocess``), to features ``(N, dim)``. transformers is imported
inside the functions that need it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from vidseek.engine.preprocess import BUILTIN_SPEC, CLIP_SPEC, FrameSpec, preprocess

BUILTIN_FORMAT_VERSION = 1  # format of a builtin CNN checkpoint (safetensors metadata)
BUILTIN_SEED = 0  # seed of the built-in CNN's initialisation when no checkpoint is given
DEFAULT_CLIP = "openai/clip-vit-base-patch32"
CLIP_ALIASES = {  # open_clip / OpenAI names -> transformers hub ids
    "ViT-B/32": "openai/clip-vit-base-patch32",
    "ViT-B/16": "openai/clip-vit-base-patch16",
    "ViT-L/14": "openai/clip-vit-large-patch14",
    "ViT-L/14@336px": "openai/clip-vit-large-patch14-336",
}


# ----------------------------------------------------------------------------------------------
# Built-in CNN


@dataclass
class CNNConfig:
    out_dim: int = 256  # width of the frame feature
    channels: tuple[int, ...] = (16, 32, 64, 128, 256)  # output channels of each stage; each stage halves H and W
    kernel: int = 3  # convolution kernel size (odd)
    norm: str = "group"  # "group": GroupNorm (the same in training and inference); "batch": BatchNorm
    groups: int = 8  # GroupNorm groups; every stage's channels must be divisible by it
    pool: str = "mean"  # "mean": global average pooling; "grid": average to a grid x grid map, kept whole
    grid: tuple[int, int] = (3, 4)  # with pool="grid": rows, columns of the pooled map (where things are)

    def __post_init__(self) -> None:
        self.channels = tuple(int(c) for c in self.channels)  # JSON gives a list
        self.grid = (int(self.grid[0]), int(self.grid[1]))
        if self.pool not in ("mean", "grid"):
            raise ValueError(f"CNNConfig.pool must be 'mean' or 'grid', got {self.pool!r}")
        if self.norm not in ("group", "batch"):
            raise ValueError(f"CNNConfig.norm must be 'group' or 'batch', got {self.norm!r}")
        if self.kernel % 2 != 1:
            raise ValueError(f"CNNConfig.kernel must be odd, got {self.kernel}")
        if self.norm == "group" and any(c % self.groups for c in self.channels):
            raise ValueError(f"CNNConfig.channels {self.channels} must all be divisible by groups={self.groups}")


class BuiltinCNN(nn.Module):
    """Conv (stride 2) / norm / ReLU stages, pooling, linear.

    pixels (N, 3, 84, 112) normalised per BUILTIN_SPEC -> features (N, out_dim). The network is fully
    convolutional before the pooling, so other frame sizes run too (the spec fixes the one it learns on).
    Global average pooling (``pool="mean"``) forgets where things are in the frame; ``pool="grid"``
    keeps a coarse map (3x4 cells at 84x112, one per 28 pixels) so the features can say where the
    person, the door and the props are, which the built-in bundle's grounding needs.
    """

    def __init__(self, cfg: CNNConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or CNNConfig()
        layers: list[nn.Module] = []
        c_in = 3
        for c_out in self.cfg.channels:
            layers += [
                nn.Conv2d(c_in, c_out, self.cfg.kernel, stride=2, padding=self.cfg.kernel // 2, bias=False),
                nn.GroupNorm(self.cfg.groups, c_out) if self.cfg.norm == "group" else nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
            ]
            c_in = c_out
        self.stages = nn.Sequential(*layers)
        cells = self.cfg.grid[0] * self.cfg.grid[1] if self.cfg.pool == "grid" else 1
        self.pool = nn.AdaptiveAvgPool2d(self.cfg.grid if self.cfg.pool == "grid" else 1)
        self.proj = nn.Linear(c_in * cells, self.cfg.out_dim)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = self.stages(pixels)  # (N, C, H/32, W/32): 84x112 -> 3x4
        x = self.pool(x).flatten(1)  # (N, C) or (N, C * rows * cols)
        return self.proj(x)  # (N, out_dim)


def save_builtin(model: BuiltinCNN, path: str | Path, spec: FrameSpec = BUILTIN_SPEC) -> None:
    """Write the CNN's weights to a safetensors file whose metadata rebuilds it (config, spec, version)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    metadata = {
        "format_version": str(BUILTIN_FORMAT_VERSION),
        "kind": "vidseek-builtin-cnn",
        "config": json.dumps(asdict(model.cfg)),
        "spec": json.dumps(spec.to_dict()),
    }
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    save_file(state, str(tmp), metadata=metadata)
    os.replace(tmp, path)


def load_builtin(path: str | Path) -> tuple[BuiltinCNN, FrameSpec]:
    """Rebuild a BuiltinCNN and its FrameSpec from a checkpoint written by ``save_builtin``."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"built-in CNN checkpoint {str(path)!r} does not exist; expected a .safetensors "
                                "file written by vidseek.trainer.encoders.save_builtin")
    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata() or {}
    if meta.get("kind") != "vidseek-builtin-cnn":
        raise ValueError(f"{path} is not a built-in CNN checkpoint (metadata kind {meta.get('kind')!r}, expected "
                         "'vidseek-builtin-cnn'); write one with vidseek.trainer.encoders.save_builtin")
    version = int(meta.get("format_version", "0"))
    if version > BUILTIN_FORMAT_VERSION:
        raise ValueError(f"{path} has format version {version}; this vidseek reads built-in CNN checkpoints up to "
                         f"version {BUILTIN_FORMAT_VERSION}: upgrade vidseek")
    model = BuiltinCNN(CNNConfig(**json.loads(meta["config"])))
    missing, unexpected = model.load_state_dict(load_file(str(path)), strict=False)
    if missing or unexpected:
        raise ValueError(f"{path}: weights do not fit its config (missing {missing[:3]}, unexpected {unexpected[:3]})")
    spec = FrameSpec.from_dict(json.loads(meta["spec"])) if "spec" in meta else BUILTIN_SPEC
    return model.eval(), spec


ONNX_PARITY = 1e-4  # the CNN read back from an ONNX graph must give its outputs within this (max abs)


def builtin_from_onnx(path: str | Path) -> tuple[BuiltinCNN, FrameSpec]:
    """The built-in CNN of an exported frame encoder graph: ``path`` is a bundle folder or its
    ``frame_encoder.onnx``. Its weights are read back from the graph, its config from their shapes
    and the graph's group reshapes, its FrameSpec from the bundle's ``bundle.json``, and the result
    is checked against the graph on onnxruntime (``ONNX_PARITY``): a bundle alone is enough to
    train another model on the same frame features (``--encoder builtin:BUNDLE_DIR``)."""
    import onnx
    from onnx import numpy_helper

    path = Path(path)
    graph_path = path / "frame_encoder.onnx" if path.is_dir() else path
    if not graph_path.is_file():
        raise FileNotFoundError(f"{graph_path} does not exist; give a bundle folder with a frame encoder or its "
                                "frame_encoder.onnx")
    graph = onnx.load(str(graph_path)).graph
    weights = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in graph.initializer}
    state, groups = {}, set()
    for node in graph.node:  # GroupNorm is exported as reshape, InstanceNormalization, Mul (weight), Add (bias)
        stage = node.name.split("/")[2] if node.name.count("/") >= 3 and node.name.startswith("/stages/") else None
        if stage and node.op_type in ("Mul", "Add") and node.input[1] in weights:
            state[f"{stage}.{'weight' if node.op_type == 'Mul' else 'bias'}"] = weights[node.input[1]].flatten()
        if stage and node.op_type == "Constant" and node.output[0].endswith("/Constant_output_0"):
            shape = numpy_helper.to_array(node.attribute[0].t).tolist()
            if isinstance(shape, list) and len(shape) == 3:
                groups.add(int(shape[1]))
    state.update({k: v for k, v in weights.items() if k.startswith(("stages.", "proj."))})
    convs = [state[k] for k in sorted((k for k in state if k.endswith(".weight") and state[k].dim() == 4),
                                      key=lambda k: int(k.split(".")[1]))]
    if not convs or "proj.weight" not in state or len(groups) > 1:
        raise ValueError(f"{graph_path} is not an exported built-in CNN (stages.N convolutions, GroupNorm, proj)")
    channels, (out_dim, flat) = tuple(int(w.shape[0]) for w in convs), state["proj.weight"].shape
    cfg = CNNConfig(out_dim=int(out_dim), channels=channels, kernel=int(convs[0].shape[-1]), norm="group",
                    groups=groups.pop() if groups else CNNConfig.groups,
                    pool="mean" if flat == channels[-1] else "grid")
    model = BuiltinCNN(cfg).eval()
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:  # weights that do not fit (a BatchNorm CNN, folded into its convolutions)
        raise ValueError(f"{graph_path} is not an exported built-in CNN this vidseek can rebuild: "
                         f"{str(exc).splitlines()[0]}") from None
    spec = BUILTIN_SPEC
    meta_path = graph_path.parent / "bundle.json"
    if meta_path.is_file():
        fe = (json.loads(meta_path.read_text()).get("features") or {}).get("frame_encoder") or {}
        spec = FrameSpec.from_dict(fe["spec"]) if fe.get("spec") else spec
    _check_onnx_parity(model, graph_path, spec)
    return model, spec


def _check_onnx_parity(model: BuiltinCNN, graph_path: Path, spec: FrameSpec) -> None:
    import onnxruntime as ort

    pixels = torch.randn(3, 3, spec.height, spec.width, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        ours = model(pixels).numpy()
    session = ort.InferenceSession(str(graph_path), providers=["CPUExecutionProvider"])
    theirs = session.run(None, {session.get_inputs()[0].name: pixels.numpy()})[0]
    diff = float(np.abs(ours - theirs).max())
    if diff > ONNX_PARITY:
        raise ValueError(f"the CNN read back from {graph_path} differs from the graph by {diff:.2g} (more than "
                         f"{ONNX_PARITY:g}): it is not a built-in CNN this vidseek can rebuild")


def seeded_builtin(cfg: CNNConfig | None = None, seed: int = BUILTIN_SEED) -> BuiltinCNN:
    """A BuiltinCNN initialised from ``seed`` without touching the global RNG (same weights every call)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return BuiltinCNN(cfg).eval()


# ----------------------------------------------------------------------------------------------
# CLIP towers


class ClipImageTower(nn.Module):
    """pixel_values (N, 3, S, S) normalised per the checkpoint's spec -> image embeddings (N, dim).

    CLIP: the projected class token (``CLIPVisionModelWithProjection.image_embeds``). SigLIP: the
    attention-pooled output (``SiglipVisionModel.pooler_output``), which SigLIP compares with text as is.
    """

    def __init__(self, vision) -> None:  # CLIPVisionModelWithProjection or SiglipVisionModel
        super().__init__()
        self.model = vision
        self.siglip = "siglip" in vision.config.model_type
        self.dim = int(vision.config.hidden_size if self.siglip else vision.config.projection_dim)
        self.image_size = int(vision.config.image_size)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        out = self.model(pixel_values=pixels)
        return out.pooler_output if self.siglip else out.image_embeds  # (N, dim)


class ClipTextTower(nn.Module):
    """input_ids, attention_mask (N, M) -> per-token hidden states (N, M, hidden), sentence (N, dim).

    CLIP: the sentence is the projected state at the end-of-text token. SigLIP: the head applied to the
    last position, so its queries are padded to the full context with the pad token (``pad_id``) and the
    mask is not given to the model, as SigLIP was trained; positions the mask marks as padding are set
    to ``pad_id``, so a batch padded with any id gives the same embeddings.
    """

    def __init__(self, text, pad_id: int | None = None) -> None:  # CLIPTextModelWithProjection or SiglipTextModel
        super().__init__()
        self.model = text
        self.siglip = "siglip" in text.config.model_type
        self.pad_id = pad_id
        self.hidden = int(text.config.hidden_size)
        self.dim = int(text.config.projection_size if self.siglip else text.config.projection_dim)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.siglip:
            input_ids = torch.where(attention_mask.bool(), input_ids, torch.full_like(input_ids, self.pad_id or 0))
            out = self.model(input_ids=input_ids)
            return out.last_hidden_state, out.pooler_output  # (N, M, hidden), (N, projection_size)
        out = self.model(input_ids=input_ids, attention_mask=attention_mask)
        return out.last_hidden_state, out.text_embeds  # (N, M, hidden), (N, projection_dim)


@dataclass
class ClipParts:
    """A CLIP or SigLIP checkpoint split for vidseek: the image tower, the text tower and tokenizer, the frame spec."""

    source: str  # the folder or hub id it was loaded from
    image: ClipImageTower
    spec: FrameSpec  # preprocessing the image tower expects
    text: ClipTextTower | None = None  # None when loaded with text=False or from a vision-only checkpoint
    tokenizer: object | None = None  # a transformers tokenizer (CLIPTokenizer, SiglipTokenizer, ...)
    kind: str = "clip"  # "clip" or "siglip"
    logit_scale: float = 100.0  # the model's temperature: its logits are scale * cosine (+ bias)
    logit_bias: float | None = None  # SigLIP's bias of the pairwise sigmoid; None for CLIP's softmax

    @property
    def fixed_length(self) -> bool:
        """SigLIP reads every query padded to its whole context; CLIP to the longest of the batch."""
        return self.kind == "siglip"

    def tokenize(self, sentences: list[str], max_length: int = 77) -> dict[str, torch.Tensor]:
        """input_ids and attention_mask (N, M) int64, padded to the longest sentence (SigLIP: to ``max_length``)."""
        if self.tokenizer is None:
            raise ValueError(f"CLIP {self.source!r} was loaded without its text tower and tokenizer")
        padding = "max_length" if self.fixed_length else True
        enc = self.tokenizer(sentences, padding=padding, truncation=True, max_length=max_length, return_tensors="pt")
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Hide transformers' progress bars and load reports for the duration of a load or save."""
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def _hub_help(name: str) -> str:
    return (f"On a machine with internet run `huggingface-cli download {name} --local-dir models/clip` "
            "(or `hf download` with newer huggingface_hub), copy that folder here and pass it: "
            "`vidseek index VIDEO_DIR --model clip:models/clip` (or `vidseek features ... --encoder clip:models/clip`); "
            f"or there run `vidseek export --clip {name} BUNDLE_DIR`, copy BUNDLE_DIR here and pass "
            "`--model BUNDLE_DIR` (docs/encoders.md, \"offline\").")


def _hub_unreachable(name: str) -> str | None:
    """Why the hub cannot give ``name`` right now, found in at most a few seconds (None: try it):
    not in the local cache, and either HF_HUB_OFFLINE is set or the hub's host does not answer.
    Without this check an offline machine spends a minute in the hub client's retries."""
    from huggingface_hub import constants, try_to_load_from_cache

    if isinstance(try_to_load_from_cache(name, "config.json"), str):
        return None  # cached: transformers loads it offline
    if constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE is set and it is not in the local cache"
    return _hub_down()


def _hub_down() -> str | None:
    """Why the hub's host does not answer (HF_ENDPOINT; a 3 s connection attempt), or None when it does."""
    from urllib.parse import urlparse

    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    try:
        socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)), timeout=3).close()
    except OSError as exc:
        return f"the hub ({constants.ENDPOINT}) does not answer ({exc.strerror or exc})"
    return None


SIGLIP_MEAN_STD = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))  # SigLIP's normalisation: pixels to [-1, 1]


HUB_PATTERNS = ("*.json", "*.txt", "*.model")  # config, tokenizer and preprocessor files of a checkpoint


def download(name: str) -> str:
    """Fetch the files of hub checkpoint ``name`` that vidseek loads (configs, tokenizer, one set of
    weights: safetensors when the repository has them) into the local hub cache, with the hub
    client's progress bars on stderr, and return the local snapshot folder. Files already cached are
    not fetched again: a checkpoint the cache holds whole (per the file listing its download kept)
    is returned without a request, and with HF_HUB_OFFLINE set or the hub down, one cached file by
    file (transformers' ``from_pretrained``) is returned as it is. A repository the hub does not
    have raises OSError."""
    import sys

    import huggingface_hub
    from huggingface_hub import HfApi, constants, snapshot_download
    from huggingface_hub.errors import GatedRepoError, LocalEntryNotFoundError, RepositoryNotFoundError

    # the cached file listing arrived in newer huggingface_hub releases; without it the hub is asked
    get_cached_repo_tree = getattr(huggingface_hub, "get_cached_repo_tree", None)
    CachedRepoTreeNotFoundError = getattr(huggingface_hub.errors, "CachedRepoTreeNotFoundError", LocalEntryNotFoundError)

    def wanted(files: list[str]) -> list[str]:
        safetensors = any(f.startswith("model") and f.endswith(".safetensors") for f in files)
        return list(HUB_PATTERNS) + (["model*.safetensors"] if safetensors else ["pytorch_model*.bin"])  # shards too

    try:  # downloaded before: from the cache without a request when it holds every file wanted
        if get_cached_repo_tree is None:
            raise CachedRepoTreeNotFoundError(name)
        listing = [f.path for f in get_cached_repo_tree(name)]
        return snapshot_download(name, allow_patterns=wanted(listing), local_files_only=True)
    except (CachedRepoTreeNotFoundError, LocalEntryNotFoundError) as exc:
        if constants.HF_HUB_OFFLINE or _hub_down():
            if isinstance(exc, CachedRepoTreeNotFoundError):  # not listed: cached file by file, or not at all
                return snapshot_download(name, local_files_only=True)
            raise  # IncompleteSnapshotError: names the files missing
    try:
        files = HfApi().list_repo_files(name)
    except GatedRepoError:
        raise
    except RepositoryNotFoundError as e:
        raise OSError(f"cannot load CLIP {name!r}: no folder of that name exists and the Hugging Face hub "
                      f"({constants.ENDPOINT}) has no model repository {name!r} (or it is private: log in with "
                      "`hf auth login`)") from e
    print(f"fetching {name} from the Hugging Face hub (once; kept in its cache)", file=sys.stderr, flush=True)
    return snapshot_download(name, allow_patterns=wanted(files))


def _clip_spec(name: str, image_size: int, crop: bool = True) -> FrameSpec:
    """The frame spec of a CLIP-like tower at its image size: the checkpoint's mean/std, and its crop,
    from its preprocessor_config.json when it has one (CLIP centre-crops; SigLIP stretches the frame)."""
    from transformers.utils.hub import cached_file

    mean, std = (CLIP_SPEC.mean, CLIP_SPEC.std) if crop else SIGLIP_MEAN_STD
    try:
        pre = cached_file(name, "preprocessor_config.json", _raise_exceptions_for_missing_entries=False)
    except OSError:
        pre = None
    if pre:
        cfg = json.loads(Path(pre).read_text())
        mean = tuple(float(v) for v in cfg.get("image_mean", mean))
        std = tuple(float(v) for v in cfg.get("image_std", std))
        crop = bool(cfg.get("do_center_crop", crop))
    return replace(CLIP_SPEC, width=image_size, height=image_size, mean=mean, std=std,
                   resize="shorter_center_crop" if crop else "stretch")


def _replace_config(config, **changes):
    """A copy of a transformers config with some fields changed."""
    out = config.__class__.from_dict(config.to_dict())
    for key, value in changes.items():
        setattr(out, key, value)
    return out


CLIP_KINDS = ("clip", "clip_vision_model", "siglip", "siglip_vision_model")  # model_type values load_clip reads


def load_clip(name_or_path: str | os.PathLike = DEFAULT_CLIP, text: bool = True) -> ClipParts:
    """Load a CLIP or SigLIP checkpoint: a folder saved with ``save_pretrained`` or a hub id (``ViT-B/32``
    style aliases too).

    A full checkpoint gives both towers; a vision-only one (``clip_vision_model``, ``siglip_vision_model``)
    the image tower only. SigLIP 2's fixed-resolution checkpoints are SigLIP models and load the same
    way. A hub id that is neither cached nor downloadable raises OSError with the command to fetch it
    elsewhere; a hub id that can be downloaded is fetched first with a progress bar (``download``).
    """
    from transformers import AutoConfig

    name = str(name_or_path)
    name = CLIP_ALIASES.get(name, name)
    local = Path(name).expanduser()
    if local.exists():
        if not (local / "config.json").is_file():
            raise FileNotFoundError(f"{str(local)!r} has no config.json; expected a CLIP folder saved with "
                                    "save_pretrained or downloaded with `huggingface-cli download ... --local-dir`")
        name = str(local)
    elif name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name:  # a path, not owner/name
        raise FileNotFoundError(f"CLIP folder {name!r} does not exist. {_hub_help(DEFAULT_CLIP)}")
    if not local.exists():
        why = _hub_unreachable(name)
        if why:
            raise OSError(f"cannot load CLIP {name!r}: no folder of that name exists and {why}. {_hub_help(name)}")
        name = download(name)
    with quiet_transformers():
        try:
            config = AutoConfig.from_pretrained(name)
        except OSError as e:
            if local.exists():
                raise
            raise OSError(f"cannot load CLIP {name!r}: no folder of that name exists and the Hugging Face hub "
                          f"could not provide it (no internet, or HF_HUB_OFFLINE=1, and not in the cache). {_hub_help(name)} "
                          f"[{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}]") from e
        if config.model_type not in CLIP_KINDS:
            raise ValueError(f"{name!r} is a {config.model_type!r} checkpoint; clip: expects a CLIP or SigLIP model "
                             f"(model_type one of {', '.join(CLIP_KINDS)})")
        if config.model_type.startswith("siglip"):
            return _load_siglip(name, config, text)
        return _load_openai_clip(name, config, text)


def _load_openai_clip(name: str, config, text: bool) -> ClipParts:
    from transformers import CLIPModel, CLIPTokenizer, CLIPTextModelWithProjection, CLIPVisionModelWithProjection

    if config.model_type == "clip_vision_model":
        image = ClipImageTower(CLIPVisionModelWithProjection.from_pretrained(name).eval())
        return ClipParts(name, image, _clip_spec(name, image.image_size))
    clip = CLIPModel.from_pretrained(name, config=config).eval()
    vcfg = _replace_config(config.vision_config, projection_dim=config.projection_dim)
    with torch.device("meta"):  # an empty shell; the loaded parts go in
        vision = CLIPVisionModelWithProjection(vcfg)
    vision.vision_model, vision.visual_projection = clip.vision_model, clip.visual_projection
    image = ClipImageTower(vision.eval())
    text_tower = tokenizer = None
    if text:
        tcfg = _replace_config(config.text_config, projection_dim=config.projection_dim)
        with torch.device("meta"):
            text_model = CLIPTextModelWithProjection(tcfg)
        text_model.text_model, text_model.text_projection = clip.text_model, clip.text_projection
        text_tower = ClipTextTower(text_model.eval())
        tokenizer = CLIPTokenizer.from_pretrained(name)
    return ClipParts(name, image, _clip_spec(name, image.image_size), text_tower, tokenizer,
                     logit_scale=float(clip.logit_scale.detach().exp()))


def _load_siglip(name: str, config, text: bool) -> ClipParts:
    from transformers import AutoTokenizer, SiglipModel, SiglipVisionModel

    if config.model_type == "siglip_vision_model":
        image = ClipImageTower(SiglipVisionModel.from_pretrained(name).eval())
        return ClipParts(name, image, _clip_spec(name, image.image_size, crop=False), kind="siglip")
    siglip = SiglipModel.from_pretrained(name, config=config).eval()
    image = ClipImageTower(siglip.vision_model)  # a SiglipVisionModel, its pooling head included
    text_tower = tokenizer = None
    if text:
        tokenizer = AutoTokenizer.from_pretrained(name)
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        text_tower = ClipTextTower(siglip.text_model.eval(), pad_id=pad_id)  # the same pad as the exported tokenizer
        if text_tower.dim != image.dim:
            raise ValueError(f"SigLIP {name!r}: its text embeddings ({text_tower.dim}) and image embeddings "
                             f"({image.dim}) differ in width; the checkpoint is inconsistent")
    return ClipParts(name, image, _clip_spec(name, image.image_size, crop=False), text_tower, tokenizer,
                     kind="siglip", logit_scale=float(siglip.logit_scale.detach().exp()),
                     logit_bias=float(siglip.logit_bias.detach()))


# ----------------------------------------------------------------------------------------------
# Registry


@dataclass
class FrameEncoder:
    """A frame encoder ready to run: the module, the preprocessing it expects and its output width."""

    kind: str  # a FRAME_ENCODERS key
    source: str | None  # checkpoint file, CLIP folder or hub id; None for the seeded built-in CNN
    module: nn.Module  # pixels (N, 3, spec.height, spec.width) -> features (N, dim)
    spec: FrameSpec
    dim: int

    @property
    def choice(self) -> str:
        """The ``--encoder`` value that rebuilds this encoder."""
        return self.kind if self.source is None else f"{self.kind}:{self.source}"

    def to(self, device: str | torch.device) -> FrameEncoder:
        self.module.to(device)
        return self

    @property
    def device(self) -> torch.device:
        return next(self.module.parameters()).device

    @torch.inference_mode()
    def encode(self, frames: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """uint8 frames (N, H, W, 3) -> float32 features (N, dim), preprocessed per ``spec``."""
        self.module.eval()
        out = np.empty((len(frames), self.dim), np.float32)
        for i in range(0, len(frames), batch_size):
            pixels = torch.from_numpy(np.ascontiguousarray(preprocess(frames[i:i + batch_size], self.spec)))
            out[i:i + batch_size] = self.module(pixels.to(self.device)).float().cpu().numpy()
        return out

    def weights_sha256(self) -> str:
        """Hash of the module's weights, to tell feature folders made with different weights apart."""
        h = hashlib.sha256()
        for key, value in self.module.state_dict().items():
            h.update(key.encode())
            h.update(value.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()

    def describe(self) -> dict:
        """Which encoder and weights made a feature folder (features.json keeps dim and spec beside it)."""
        return {"encoder": self.choice, "kind": self.kind, "weights_sha256": self.weights_sha256()}


@dataclass(frozen=True)
class FrameEncoderKind:
    spec: FrameSpec  # preprocessing of the default model (a checkpoint may carry its own)
    dim: int | None  # output width of the default model; None: depends on the checkpoint
    argument: str  # what may follow "KIND:" in a choice
    build: Callable[[str | None], FrameEncoder]


def _build_builtin(arg: str | None) -> FrameEncoder:
    if arg is None:
        model, spec = seeded_builtin(), BUILTIN_SPEC
    elif Path(arg).is_dir() or arg.endswith(".onnx"):  # an exported bundle's CNN
        model, spec = builtin_from_onnx(arg)
    else:
        model, spec = load_builtin(arg)
    return FrameEncoder("builtin", arg, model, spec, model.cfg.out_dim)


def _build_clip(arg: str | None) -> FrameEncoder:
    parts = load_clip(arg or DEFAULT_CLIP, text=False)
    return FrameEncoder("clip", arg or DEFAULT_CLIP, parts.image, parts.spec, parts.image.dim)


FRAME_ENCODERS: dict[str, FrameEncoderKind] = {
    "builtin": FrameEncoderKind(BUILTIN_SPEC, CNNConfig().out_dim,
                                "CKPT.safetensors, BUNDLE_DIR or frame_encoder.onnx (optional)", _build_builtin),
    "clip": FrameEncoderKind(CLIP_SPEC, None, f"hub id or local folder (default {DEFAULT_CLIP})", _build_clip),
}


def build_frame_encoder(choice: str) -> FrameEncoder:
    """Build ``builtin``, ``builtin:CKPT.safetensors``, ``clip`` or ``clip:ID_OR_PATH`` on the CPU, in eval mode."""
    kind, sep, arg = choice.partition(":")
    if kind not in FRAME_ENCODERS:
        known = ", ".join(f"{k}[:{v.argument}]" for k, v in FRAME_ENCODERS.items())
        raise ValueError(f"unknown frame encoder {choice!r}; expected one of {known}")
    if sep and not arg:
        expected = f"{kind}:{FRAME_ENCODERS[kind].argument}"
        raise ValueError(f"frame encoder {choice!r} has nothing after ':'; expected {expected}")
    return FRAME_ENCODERS[kind].build(arg or None)
