"""A synthetic video world with exact moment annotations (``vidseek synth``).

Procedurally rendered rooms with a door, a light, a chair, a table, boxes, balls and one or two
articulated people doing 12 kinds of actions; written as real encoded videos with moment-retrieval
annotations (jsonl, Charades-STA) and a manifest. numpy + PyAV only; no torch.

Public API::

    render_dataset(out_dir, n_videos, seed=0, config=SynthConfig())   # videos + annotations
    make_video(seed, index, config) -> Video                           # plan of one video
    Renderer(video).frame(i) -> (H, W, 3) uint8                        # its frames
    annotate(video, k) -> list[dict]                                   # its jsonl records
    contact_sheet(path, seed=0, n_videos=4)                            # PNG preview of the world
"""

from vidseek.synth.config import RENDERER_VERSION, SynthConfig
from vidseek.synth.render import Renderer
from vidseek.synth.sheet import contact_sheet
from vidseek.synth.verbs import VERBS
from vidseek.synth.video import Video, make_video
from vidseek.synth.writer import annotate, render_dataset

__all__ = ["RENDERER_VERSION", "SynthConfig", "Renderer", "contact_sheet", "VERBS", "Video", "make_video",
           "annotate", "render_dataset"]
