"""The index of protected works: register, remove, fingerprint, search.

Other domains use only what is named here.
"""

from index.faiss_index import Hit
from index.fingerprint import Fingerprint, fingerprint_file
from index.live import SIGNALS, SearchResult, health, rebuild, search
from index.media import MediaError, MediaInfo, frames_at, probe
from index.embedder import RANDOM_WEIGHTS_WARNING, EmbedderInfo
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

__all__ = [
    "POLICIES",
    "RANDOM_WEIGHTS_WARNING",
    "SIGNALS",
    "EmbedderInfo",
    "Fingerprint",
    "Hit",
    "MediaError",
    "MediaInfo",
    "SearchResult",
    "create_pending_work",
    "discard_pending_work",
    "fingerprint_file",
    "frames_at",
    "get_work",
    "health",
    "list_works",
    "probe",
    "process_pending_work",
    "rebuild",
    "reembed_all",
    "register_work",
    "remove_work",
    "search",
    "set_work_policy",
    "validate_meta",
]
