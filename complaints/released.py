"""Which release is this uploaded clip? verify's answer: by its C2PA manifest, or, when that was
stripped, by its watermark, then its pictures through the gate's own matcher over the released
clips (compliance.verify_clip's recovery).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import compliance
from clipgate.errors import NotFound, TooLarge
from clipgate.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class Identified:
    release: dict[str, Any]
    how: str  # "manifest" | "watermark" | "fingerprint"
    upload: dict[str, Any]  # name, sha256, size of the uploaded copy
    frames_matched: int | None = None


def identify_clip(path: Path, *, name: str | None = None,
                  settings: Settings) -> Identified:
    """The release an uploaded clip is a copy of. Raises BadInput for what is not media,
    TooLarge past the upload limit, NotFound when clipgate never released it."""
    path = Path(path)
    name = name or path.name
    if path.is_file() and path.stat().st_size > settings.max_upload_bytes:
        raise TooLarge(f"{name}: over the upload limit of {settings.max_upload_bytes} bytes")
    # verify's own answer: the manifest, else its recovery by watermark, then by fingerprint.
    report = compliance.verify_clip(path, settings=settings)  # BadInput for non-media
    upload = {"name": name, "sha256": report["sha256"], "size": path.stat().st_size}
    # Only a manifest signed by clipgate's own signer is taken at its word.
    if report["release"] and report["state"] == "Trusted" and not report["recovered_by"]:
        release = compliance.get_release(report["release"]["release_id"], settings=settings)
        return Identified(release, "manifest", upload)
    recovery = report["recovery"]
    if recovery is None:
        raise NotFound(f"{name}: this clip is not one clipgate released (it carries no clipgate "
                       "manifest and neither its watermark nor its frames match a released "
                       "clip); give the release id instead if you have it")
    release = compliance.get_release(recovery["release"]["release_id"], settings=settings)
    return Identified(release, recovery["by"], upload, recovery["frames_matched"])
