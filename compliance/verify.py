"""Read and validate the C2PA manifest of a clip (or any asset type c2pa reads)."""

from __future__ import annotations

import json
import mimetypes
from dataclasses import asdict, dataclass, field
from pathlib import Path

import c2pa

STATES = ("Trusted", "Valid", "Invalid", "NoManifest")
# Suffixes Python's mimetypes table lacks or names differently from c2pa.
_EXTRA_MIMES = {".mov": "video/quicktime", ".m4v": "video/x-m4v", ".m4a": "audio/mp4",
                ".heic": "image/heic", ".heif": "image/heif", ".avif": "image/avif",
                ".webp": "image/webp", ".dng": "image/dng", ".jxl": "image/jxl",
                ".c2pa": "application/c2pa"}


@dataclass
class ManifestReport:
    """What a reader found: validation state, the active manifest and its failures."""

    state: str  # "Trusted" | "Valid" | "Invalid" | "NoManifest"
    manifest: dict | None  # the active manifest as JSON (parsed)
    assertions: dict = field(default_factory=dict)  # label -> data for the active manifest
    validation_errors: list[dict] = field(default_factory=list)  # failures (code + explanation)
    # The RFC 3161 timestamp of the signature: time, validated (its signature and imprint check
    # out) and trusted (its TSA chains to a trust anchor); None when the signature has none.
    timestamp: dict | None = None

    def to_dict(self) -> dict:
        """A JSON-ready dict of the report."""
        return asdict(self)


def asset_mime(path: Path) -> str:
    """MIME type c2pa should read path as; ValueError when the suffix is unknown to c2pa."""
    suffix = Path(path).suffix.lower()
    mime = _EXTRA_MIMES.get(suffix) or mimetypes.guess_type(f"x{suffix}", strict=False)[0]
    if mime is None or mime not in c2pa.Reader.get_supported_mime_types():
        raise ValueError(
            f"cannot read content credentials from {Path(path).name!r}: "
            f"file type {suffix or '(no suffix)'!r} is not one C2PA supports"
        )
    return mime


def _state(raw: object) -> str:
    # Fail closed: anything the SDK reports that is not a known good state counts as Invalid.
    text = str(raw or "").strip().lower()
    return {"trusted": "Trusted", "valid": "Valid"}.get(text, "Invalid")


def _failures(store: dict) -> list[dict]:
    results = store.get("validation_results") or {}
    entries = (results.get("activeManifest") or {}).get("failure")
    if entries is None:
        # Older SDKs give only the flat validation_status list, which holds failures alone.
        entries = store.get("validation_status") or []
    for delta in results.get("ingredientDeltas") or []:
        entries = entries + ((delta.get("validationDeltas") or {}).get("failure") or [])
    return [
        {"code": e.get("code", ""), "explanation": e.get("explanation", ""), "url": e.get("url", "")}
        for e in entries
    ]


def _timestamp(store: dict, manifest: dict) -> dict | None:
    results = (store.get("validation_results") or {}).get("activeManifest") or {}
    codes = {kind: {e.get("code", "") for e in results.get(kind) or []}
             for kind in ("success", "informational", "failure")}
    if not any(c.startswith("timeStamp.") for found in codes.values() for c in found):
        return None
    ok = codes["success"]
    return {"time": (manifest.get("signature_info") or {}).get("time"),
            "validated": "timeStamp.validated" in ok and "timeStamp.validated" not in codes["failure"],
            "trusted": "timeStamp.trusted" in ok}


def _assertions(manifest: dict) -> dict:
    out: dict = {}
    for item in manifest.get("assertions") or []:
        label = item.get("label", "")
        # A repeated label gets c2pa's own instance suffix so no assertion is silently dropped.
        key, n = label, 1
        while key in out:
            key, n = f"{label}__{n}", n + 1
        out[key] = item.get("data")
    return out


def _context(trust_anchor_pem: bytes | None) -> c2pa.Context:
    if trust_anchor_pem is None:
        return c2pa.Context()
    return c2pa.Context.from_dict({"trust": {"user_anchors": trust_anchor_pem.decode("ascii")}})


def read_manifest(path: Path, trust_anchor_pem: bytes | None, *, mime: str | None = None) -> ManifestReport:
    """Validate path's manifest; Trusted needs a signer chaining to trust_anchor_pem.

    `mime` overrides the type taken from the suffix (for temp files). A file with no
    manifest gives NoManifest; an unsupported file type gives ValueError.
    """
    path = Path(path)
    mime = mime or asset_mime(path)
    try:
        with _context(trust_anchor_pem) as ctx, open(path, "rb") as fh:
            with c2pa.Reader(mime, fh, None, ctx) as reader:
                store = json.loads(reader.json())
    except c2pa.C2paError.ManifestNotFound:
        return ManifestReport(state="NoManifest", manifest=None)
    except c2pa.C2paError.NotSupported as exc:
        raise ValueError(f"cannot read content credentials from {path.name!r}: {exc}") from exc
    except c2pa.C2paError as exc:
        # Bytes that do not parse as the claimed container: nothing there can be trusted,
        # and callers deciding on a clip need an answer, not a crash.
        return ManifestReport(
            state="Invalid", manifest=None,
            validation_errors=[{"code": "asset.unreadable", "explanation": str(exc), "url": ""}],
        )
    active = store.get("active_manifest")
    manifest = (store.get("manifests") or {}).get(active) if active else None
    return ManifestReport(
        state=_state(store.get("validation_state")) if manifest is not None else "Invalid",
        manifest=manifest,
        assertions=_assertions(manifest) if manifest else {},
        validation_errors=_failures(store),
        timestamp=_timestamp(store, manifest) if manifest else None,
    )
