"""The index of protected works: register, remove, fingerprint, search.

Other domains use only what is named here.
"""

from index.faiss_index import Hit
from index.fingerprint import Fingerprint, fingerprint_file
from index.live import health, rebuild
from index.media import MediaError, MediaInfo, frames_at, probe
from index.registry import (
    POLICIES,
    create_pending_work,
    discard_pending_work,
    get_work,
    list_works,
    process_pending_work,
    reembed_all,
    register_work,
    remove_work,
    set_work_policy,
    validate_meta,
)
from index.faiss_index import FrameIndex, FrameRows, SignalRows, frame_rows
from index.search import SWITCHES, Matched, SearchResult, match_index, search
from index.signals import MIN_HASH_QUALITY, Rule, Signal, active, register, rules
from index.store import vector_rows
from index.signals.clip import status as clip_status

__all__ = [
    "MIN_HASH_QUALITY",
    "POLICIES",
    "SWITCHES",
    "Fingerprint",
    "FrameIndex",
    "FrameRows",
    "Hit",
    "MediaError",
    "Matched",
    "MediaInfo",
    "Rule",
    "SearchResult",
    "Signal",
    "SignalRows",
    "active",
    "clip_status",
    "create_pending_work",
    "discard_pending_work",
    "fingerprint_file",
    "frame_rows",
    "frames_at",
    "get_work",
    "health",
    "list_works",
    "match_index",
    "probe",
    "process_pending_work",
    "rebuild",
    "reembed_all",
    "register",
    "register_work",
    "remove_work",
    "rules",
    "search",
    "set_work_policy",
    "validate_meta",
    "vector_rows",
]
