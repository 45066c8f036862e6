"""One typed Settings object, read once from CLIPGATE_* environment variables (and an optional .env)."""

from __future__ import annotations

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

    # CLIP: model name from open_clip's registry and a local checkpoint. No checkpoint means random
    # weights, which every affected result says.
    clip_model: str = "ViT-B-32"
    clip_checkpoint: Path | None = None
    clip_device: str = "auto"
    clip_batch_size: int = 32

    # Frame sampling: at least this many frames per second, plus every shot change.
    sample_fps: float = 1.0
    # Mean absolute difference (0..1) of 32x32 grey thumbnails that counts as a shot change.
    shot_change_threshold: float = 0.18

    # Limits on input; anything past them is refused with a clear error.
    max_upload_bytes: int = 200 * 1024 * 1024
    max_frame_pixels: int = 3840 * 2160
    max_duration_s: float = 600.0

    # Matching thresholds. A signal "fires" on a frame pair when its distance is at most this.
    pdq_max_distance: int = 60  # of 256 bits
    phash_max_distance: int = 12  # of 64 bits
    # Cosine similarity at which CLIP fires; counted only with real (checkpoint) weights.
    clip_min_similarity: float = 0.92
    clip_search_k: int = 8
    # Candidates for the geometric (ORB + RANSAC) check: hash hits up to this PDQ distance, and
    # CLIP's nearest frames; at most orb_max_candidates work frames per clip frame.
    pdq_candidate_distance: int = 100
    orb_clip_candidates: int = 3
    orb_max_candidates: int = 6
    # Keypoint matches that must agree on one placement for the geometric check to fire.
    orb_min_inliers: int = 20
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
    tsa_url: str | None = None

    # API
    host: str = "127.0.0.1"
    port: int = 8000
    # A bootstrap API key for the generator service (hashed into the database at start-up).
    api_key: str | None = None

    generator_backend: str = "procedural"

    log_level: str = "INFO"

    @field_validator(
        "database_url", "broker_url", "result_backend", "clip_checkpoint", "signing_cert_chain",
        "signing_key", "trust_anchors", "tsa_url", "api_key", mode="before",
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
    def uploads_dir(self) -> Path:
        return self.data_dir / "uploads"


@lru_cache
def get_settings() -> Settings:
    return Settings()
