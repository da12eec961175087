"""vidseek: find moments in video by natural language.

The Python API (``Index``, ``Searcher``, ``Moment``) is loaded on first use, so ``import vidseek``
stays light and never imports torch::

    from vidseek import Index

    index = Index("my-index")
    index.add("videos/")                      # model="builtin", a bundle folder, or "clip:ID_OR_PATH"
    moments = index.search("a person opens the door", top_k=5)
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {
    "Index": "vidseek.library.api",
    "IndexInfo": "vidseek.library.api",
    "Searcher": "vidseek.library.searcher",
    "Moment": "vidseek.library.searcher",
    "Moments": "vidseek.library.searcher",
    "SearchTrace": "vidseek.library.searcher",
    "Curve": "vidseek.library.searcher",
    "VidseekError": "vidseek.errors",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'vidseek' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = ["__version__", *_LAZY]  # noqa: PLE0604 (the keys are strings)
