"""Real wording: a bundle on the held-out paraphrase bank of a synthetic world, next to the world's
template sentences, with and without the spelling step (the figures of docs/model-card.md, "Real
wording").

    python benchmarks/wording.py WORLD_DIR INDEX [--out FILE.json]

WORLD_DIR is a `vidseek synth ... --split 0,0,1` world the bundle never saw and INDEX an index of its
videos (`vidseek index WORLD_DIR/videos --index INDEX --model ...`). The bank is made again from the
world's manifest with this vidseek (``vidseek.synth.paraphrase.bank``), so a world rendered by an
older one is scored on today's bank. ``vidseek.library.wording.report`` does the scoring.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import click


@click.command()
@click.argument("world", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("index_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None)
def main(world: Path, index_dir: Path, out: Path | None) -> None:
    from vidseek.atomic import atomic_write_text
    from vidseek.library.api import Index
    from vidseek.library.wording import report
    from vidseek.synth.paraphrase import bank

    manifest = json.loads((world / "manifest.json").read_text())
    atomic_write_text(world / "paraphrase_test.jsonl",
                      "".join(json.dumps(r) + "\n" for r in bank(manifest["videos"], manifest["seed"])))
    figures = {}
    with Index(index_dir) as index:
        for spelling in (True, False):
            index.searcher.grounder.spelling = spelling
            t0 = time.perf_counter()
            figures["with_spelling" if spelling else "without_spelling"] = report(index, world)
            print(f"spelling {'on' if spelling else 'off'} ({time.perf_counter() - t0:.0f} s): "
                  f"{json.dumps(figures['with_spelling' if spelling else 'without_spelling'])}", flush=True)
        figures["bundle"] = index.searcher.bundle.model_name
    figures["world"] = f"vidseek synth --seed {manifest['seed']} ({len(manifest['videos'])} videos)"
    if out is not None:
        atomic_write_text(out, json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
