"""Rendered query clips kept between runs (`clipgate bench quality --clips DIR`).

Drawing and encoding the 611 clips of a full run is over a third of its time (without ablations,
here: 18 min with rendering, 11.5 min reusing the clips). A matcher change is measured on the
very same clips, so they can be kept: each run's clips go to a folder of DIR
named by a key of everything that decides their pixels (the plan's parameters, the corpus's
files, the code that draws clips). A run that finds its folder reuses each clip it holds; any
change to one of those gets a new folder, so a stale clip is never gated.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from bench.quality import queries as qmod
from bench.quality.corpus import Corpus
from clipgate.errors import BadInput

# The modules whose code decides a clip's pixels (the plan, the edits, the overlays).
RENDERERS = ("queries.py", "transforms.py", "overlays.py")


def folder(root: Path, corpus: Corpus, plan: dict[str, Any]) -> Path:
    """root/<key>, made if missing: the folder of this plan's clips. plan: the plan's parameters
    (seed, queries per family...)."""
    h = hashlib.sha256(repr(sorted(plan.items())).encode())
    for paths in (corpus.works, corpus.videos, corpus.unregistered, corpus.hard_negatives):
        for p in paths:  # order too: the plan draws from these lists by position
            h.update(f"{p}:{p.stat().st_size}|".encode())
        h.update(b"#")
    code = Path(qmod.__file__).parent
    for name in RENDERERS:
        h.update((code / name).read_bytes())
    return writable(Path(root) / h.hexdigest()[:16])


def writable(where: Path) -> Path:
    """where, made if missing; BadInput if it cannot be made or written to (checked before the
    corpus is fetched, not after)."""
    try:
        where.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise BadInput(f"cannot keep the query clips in {where}: {e.strerror or e}") from e
    if not os.access(where, os.W_OK):
        raise BadInput(f"cannot keep the query clips in {where}: it is read-only")
    return where


def clip(spec: qmod.Spec, where: Path) -> tuple[Path, bool]:
    """The clip of spec in the folder `where`: (its path, whether an earlier run left it). A new
    one is written under a temporary name and then renamed, so an interrupted run leaves no
    half-written clip to be reused."""
    path = where / f"{spec.query.id}.mp4"
    if path.is_file():
        return path, True
    tmp = where / f"{spec.query.id}.{os.getpid()}.tmp.mp4"
    try:
        qmod.write(spec, tmp)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path, False
