"""Verify: what is this file? Its C2PA manifest, validated against clipgate's trust anchors (and
the TSA's), and the release it belongs to: by its bytes, by the release its manifest names, or,
with no valid manifest, by its pixels (released.recover: watermark, then fingerprint).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import index
from clipgate import db
from clipgate.errors import BadInput
from clipgate.files import sha256_file
from clipgate.settings import Settings, get_settings
from compliance import store
from compliance.release import public_release, signer
from compliance.released import Recovered, recover
from compliance.signing import COMPLIANCE_LABEL
from compliance.verify import read_manifest


def verify_clip(path: Path, *, settings: Settings | None = None,
                recover_by: tuple[str, ...] = ("watermark", "fingerprint")) -> dict[str, Any]:
    """Manifest, validation state against clipgate's trust anchor, and the release record. A file
    with no manifest, one that does not validate, or one that names no release is traced by its
    pixels (watermark, then fingerprint: `recovered_by`); `verified` stays False for it, as these
    bytes were not signed."""
    settings = settings or get_settings()
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise BadInput(f"{path}: the file is empty")
    # Same rule as the gate: what is not a readable image or video is bad input, not "Invalid".
    index.probe(path, max_frame_pixels=settings.max_frame_pixels)
    anchor = signer(settings).trust_anchors_pem
    try:
        report = read_manifest(path, anchor)
    except ValueError as e:
        raise BadInput(str(e)) from e
    digest = sha256_file(path)
    compliance = report.assertions.get(COMPLIANCE_LABEL) or {}
    with db.connection(settings) as conn:
        release = store.release_by_file(conn, sha256=digest)
        matched_by = "file_sha256" if release else None
        if release is None and compliance.get("release_id"):
            release = store.get_release(conn, release_id=compliance["release_id"])
            matched_by = "manifest" if release else None
    recovered = None
    if recover_by and (report.state not in ("Trusted", "Valid") or release is None):
        recovered = recover(path, settings, by=recover_by, trust_anchor_pem=anchor)
        if recovered is not None and release is None:
            release, matched_by = recovered.release, recovered.by
    matches = release["file_sha256"] == digest if release else None
    verified = report.state == "Trusted" and bool(matches) and release["status"] == "active"
    return {
        "file": path.name,
        "sha256": digest,
        "state": report.state,
        "verdict": _verdict(report.state, release, verified, recovered),
        # False: the manifest names a release, but this file's bytes are not the released file's.
        "file_matches_release": matches,
        "verified": verified,
        "validation_errors": report.validation_errors,
        "timestamp": report.timestamp,
        "manifest": report.manifest,
        "assertions": report.assertions,
        "release": public_release(release) if release else None,
        "release_matched_by": matched_by,
        # A copy traced by its pixels: how, how sure, which release (and its status), and the
        # manifest that release was signed with.
        "recovered_by": recovered.by if recovered else None,
        "recovery": _public_recovery(recovered) if recovered else None,
    }


def _public_recovery(recovered: Recovered) -> dict[str, Any]:
    return {"by": recovered.by, "confidence": recovered.confidence,
            "release": public_release(recovered.release),
            "frames_matched": recovered.frames_matched, "frames": recovered.frames,
            "manifest": recovered.manifest}


def _verdict(state: str, release: dict[str, Any] | None, verified: bool,
             recovered: Recovered | None) -> str:
    """One sentence for people: what this file is."""
    if verified:
        return f"release {release['id']}: this file is the signed release, and it is active"
    if recovered is not None:
        rel = recovered.release
        status = "REVOKED" if rel["status"] == "revoked" else "active"
        return (f"a copy of release {rel['id']} ({status}), recovered by {recovered.by}; "
                "these bytes are not the signed release")
    if release is not None:
        if release["status"] == "revoked":
            return f"release {release['id']}, which was REVOKED"
        return (f"names release {release['id']} ({state}), but these bytes are not the "
                "released file")
    if state in ("Trusted", "Valid"):
        return f"a {state.lower()} manifest that names no clipgate release"
    return ("not recovered: no valid clipgate manifest, and no released clip matches its "
            "watermark or frames")
