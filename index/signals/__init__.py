"""Fingerprint signals: each is one module with one `Signal` subclass (base.py), registered here
with one line. Storage, the FAISS index, search and alignment know signals only through the
registry, so a new signal needs no edit anywhere else."""

from index.signals.base import Computed, QueryRows, Rule, Signal
from index.signals.clip import ClipSignal
from index.signals.hashes import MIN_HASH_QUALITY, PDQ_BITS, PHASH_BITS, FrameHashes, hash_frame
from index.signals.pdq import PdqSignal
from index.signals.phash import PhashSignal
from index.signals.registry import active, names, register, rules, signal_class, unregister
from index.signals.sscd import SscdSignal

# The signals clipgate ships, one line each (their order is the order results list them in).
register(SscdSignal)
register(PdqSignal)
register(PhashSignal)
register(ClipSignal)

__all__ = [
    "MIN_HASH_QUALITY",
    "PDQ_BITS",
    "PHASH_BITS",
    "Computed",
    "FrameHashes",
    "QueryRows",
    "Rule",
    "Signal",
    "active",
    "hash_frame",
    "names",
    "register",
    "rules",
    "signal_class",
    "unregister",
]
