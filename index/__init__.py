"""The index of protected works: register, remove, fingerprint, search.

Other domains use only what is named here.
"""

from index.faiss_index import Hit
from index.features import extract as extract_features
from index.features import verify as verify_features
from index.fingerprint import Fingerprint, fingerprint_file
from index.gpu import backend as search_backend
from index.gpu import use_device
from index.live import ChangeFollower, compact, follow_changes, health, rebuild, sync, unload
from index.media import MediaError, MediaInfo, frames_at, iter_sampled_frames, probe
from index.registry import (
    POLICIES,
    active_works,
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
    version,
    works_by_id,
    works_page,
)
from index.faiss_index import FrameIndex, FrameRows, SignalRows, frame_rows
from index.search import SWITCHES, Matched, SearchResult, match_index, search
from index.signals import (
    MIN_HASH_QUALITY,
    Rule,
    Signal,
    SscdSignal,
    active,
    hash_frame,
    register,
    rules,
)
from index.signals.sscd import MODELS as SSCD_MODELS
from index.store import vector_rows
from index.synthetic import VectorModel, seed_synthetic, vector_model
from index.threads import one_thread_if_small, threads_limited
from index.milvus import MilvusVectors
from index.vectors import VectorConfig, VectorIndex
from index.vectors import compressed as compressed_vectors
from index.vectors import flat as flat_vectors
from index.vectors import from_bytes as vectors_from_bytes
from index.vectors import train_size
from index.signals.clip import status as clip_status

__all__ = [
    "ChangeFollower",
    "Fingerprint",
    "FrameIndex",
    "FrameRows",
    "Hit",
    "MIN_HASH_QUALITY",
    "Matched",
    "MilvusVectors",
    "MediaError",
    "MediaInfo",
    "POLICIES",
    "Rule",
    "SSCD_MODELS",
    "SWITCHES",
    "SearchResult",
    "Signal",
    "SignalRows",
    "SscdSignal",
    "VectorConfig",
    "VectorIndex",
    "VectorModel",
    "active",
    "active_works",
    "clip_status",
    "compact",
    "compressed_vectors",
    "create_pending_work",
    "discard_pending_work",
    "extract_features",
    "fingerprint_file",
    "flat_vectors",
    "follow_changes",
    "frame_rows",
    "frames_at",
    "get_work",
    "hash_frame",
    "health",
    "iter_sampled_frames",
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
    "one_thread_if_small",
    "threads_limited",
    "search",
    "search_backend",
    "seed_synthetic",
    "set_work_policy",
    "sync",
    "train_size",
    "unload",
    "use_device",
    "validate_meta",
    "version",
    "works_by_id",
    "works_page",
    "vector_model",
    "vector_rows",
    "vectors_from_bytes",
    "verify_features",
]
