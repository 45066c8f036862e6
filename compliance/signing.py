"""Sign generated clips with a C2PA manifest: AI disclosure, generator facts, compliance verdict."""

from __future__ import annotations

import datetime as dt
import io
import os
import struct
import tempfile
import threading
import time
import tomllib
import zlib
from importlib import metadata
from pathlib import Path
from typing import Any

import c2pa

from compliance.certs import Credentials, certificate_problems, load_credentials
from compliance.verify import read_manifest

TRAINED_ALGORITHMIC_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
GENERATOR_LABEL = "org.clipgate.generator"
COMPLIANCE_LABEL = "org.clipgate.compliance"
TRAINING_MINING_LABEL = "cawg.training-mining"
SOFT_BINDING_LABEL = "c2pa.soft-binding"
TRAINING_MINING_USES = (
    "cawg.ai_generative_training",
    "cawg.ai_training",
    "cawg.ai_inference",
    "cawg.data_mining",
)
VIDEO_MIMES = {".mp4": "video/mp4", ".mov": "video/quicktime"}
# A health self-test may reach a TSA, so its result is reused for a while.
_SELF_TEST_TTL_S = 600.0


class SigningError(RuntimeError):
    """Signing failed; the message carries the underlying reason."""


def clipgate_version() -> str:
    """The installed clipgate version, or the checkout's pyproject version when not installed."""
    try:
        return metadata.version("clipgate")
    except metadata.PackageNotFoundError:
        pass
    try:
        pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
        return str(tomllib.loads(pyproject.read_text())["project"]["version"])
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return "unknown"


def video_mime(path: Path) -> str:
    """MIME type for a clip path from its suffix; ValueError for anything but MP4/MOV."""
    mime = VIDEO_MIMES.get(Path(path).suffix.lower())
    if mime is None:
        raise ValueError(
            f"cannot sign {Path(path).name!r}: only H.264 video in .mp4 or .mov files is signed "
            f"(got suffix {Path(path).suffix or '(none)'!r})"
        )
    return mime


def soft_binding(alg: str, value: str) -> dict:
    """A c2pa.soft-binding assertion's data: a watermark (or fingerprint) algorithm and its value
    for the whole asset (one block, no narrower scope)."""
    return {"alg": alg, "blocks": [{"scope": {}, "value": value}], "pad": []}


def build_manifest(generator: dict, compliance: dict, title: str | None,
                   soft_bindings: list[dict] | None = None) -> dict:
    """The manifest definition that every clipgate clip carries; soft_bindings: the data of each
    c2pa.soft-binding assertion (soft_binding())."""
    agent = {"name": str(generator.get("model", "unknown"))}
    if generator.get("version") is not None:
        agent["version"] = str(generator["version"])
    manifest: dict[str, Any] = {
        "claim_generator_info": [{"name": "clipgate", "version": clipgate_version()}],
        "assertions": [
            {
                "label": "c2pa.actions",
                "data": {
                    "actions": [
                        {
                            "action": "c2pa.created",
                            "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA,
                            "softwareAgent": agent,
                        }
                    ]
                },
            },
            {"label": GENERATOR_LABEL, "data": generator},
            {"label": COMPLIANCE_LABEL, "data": compliance},
            {
                "label": TRAINING_MINING_LABEL,
                "data": {"entries": {use: {"use": "notAllowed"} for use in TRAINING_MINING_USES}},
            },
        ],
    }
    for binding in soft_bindings or []:
        manifest["assertions"].append({"label": SOFT_BINDING_LABEL, "data": binding})
    if title is not None:
        manifest["title"] = title
    return manifest


def _tiny_png() -> bytes:
    """A valid 1x1 grey PNG, so the self-test needs no media library."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00\x80")) + chunk(b"IEND", b"")


class ClipSigner:
    """Signs clips with one set of credentials (dev CA or configured)."""

    def __init__(self, credentials: Credentials, tsa_url: str | None = None,
                 tsa_anchors_pem: bytes | None = None):
        self.credentials = credentials
        self.tsa_url = tsa_url
        self.tsa_anchors_pem = tsa_anchors_pem
        self._lock = threading.Lock()
        self._self_test: tuple[float, str | None] | None = None  # (monotonic time, error)

    @classmethod
    def from_settings(cls, settings: Any) -> "ClipSigner":
        """A signer for the configured credentials (dev CA when none are configured)."""
        anchors = settings.tsa_trust_anchors
        try:
            tsa_pem = Path(anchors).read_bytes() if anchors is not None else None
        except OSError as exc:
            raise ValueError(f"CLIPGATE_TSA_TRUST_ANCHORS={anchors}: cannot read it ({exc})") from exc
        if tsa_pem is not None and b"-----BEGIN CERTIFICATE-----" not in tsa_pem:
            raise ValueError(f"CLIPGATE_TSA_TRUST_ANCHORS={anchors}: no PEM certificate in it")
        return cls(load_credentials(settings), tsa_url=settings.tsa_url, tsa_anchors_pem=tsa_pem)

    @property
    def trust_anchors_pem(self) -> bytes:
        """What verification trusts: the signing credentials' anchors and the TSA's."""
        extra = self.tsa_anchors_pem or b""
        return self.credentials.trust_anchor_pem + (b"\n" + extra if extra else b"")

    def _signer(self) -> c2pa.Signer:
        # A fresh native Signer per call: c2pa resources made before a fork are closed in the
        # child (Celery prefork workers), and creating one is cheap next to hashing a video.
        info = c2pa.C2paSignerInfo(self.credentials.alg, self.credentials.chain_pem,
                                   self.credentials.key_pem, self.tsa_url)
        return c2pa.Signer.from_info(info)

    def _reason(self, exc: BaseException) -> str:
        # c2pa messages already start with their kind ("Other: ..."); others need the type.
        reason = str(exc) if isinstance(exc, c2pa.C2paError) else f"{type(exc).__name__}: {exc}"
        # c2pa says only "the certificate is invalid"; name what is actually wrong with it.
        problems = certificate_problems(self.credentials)
        if problems:
            reason += f" (certificate problems: {'; '.join(problems)})"
        return reason

    def sign(self, src: Path, dst: Path, *, generator: dict, compliance: dict,
             title: str | None = None, soft_bindings: list[dict] | None = None) -> dict:
        """Write dst: src with a signed C2PA manifest. Returns manifest_label, alg, signer CN and
        the manifest as read back from dst (JSON)."""
        src, dst = Path(src), Path(dst)
        mime = video_mime(src)
        manifest = build_manifest(generator, compliance, title, soft_bindings)
        tmp: Path | None = None
        try:
            # Temp file next to dst so os.replace is an atomic rename on the same filesystem.
            fd, tmp_name = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".part", dir=dst.parent)
            tmp = Path(tmp_name)
            with os.fdopen(fd, "w+b") as out, open(src, "rb") as inp:
                with c2pa.Builder(manifest) as builder, self._signer() as signer:
                    builder.sign(signer, mime, inp, out)
                out.flush()
                os.fsync(out.fileno())
            signed = self._check_signed(tmp, mime)
            os.replace(tmp, dst)
            tmp = None
        except Exception as exc:
            # A stale dst from an earlier call must not pass for this call's output.
            dst.unlink(missing_ok=True)
            raise SigningError(f"signing {src.name} failed: {self._reason(exc)}") from exc
        finally:
            if tmp is not None:
                tmp.unlink(missing_ok=True)
        return {"manifest_label": str(signed.get("label", "")), "alg": self.credentials.alg,
                "signer": self.credentials.subject_cn, "manifest": signed}

    def _check_signed(self, path: Path, mime: str) -> dict:
        """Read the signed file back before publishing it; return its active manifest."""
        report = read_manifest(path, self.trust_anchors_pem, mime=mime)
        if report.state not in ("Trusted", "Valid") or report.manifest is None:
            codes = ", ".join(e.get("code", "?") for e in report.validation_errors) or "none"
            raise SigningError(f"the signed output reads {report.state} (failures: {codes})")
        # A TSA is configured: a release without a timestamp that validates is not released.
        if self.tsa_url and not (report.timestamp or {}).get("validated"):
            raise SigningError(f"the timestamp from {self.tsa_url} is missing or does not validate")
        return report.manifest

    def _run_self_test(self) -> str | None:
        with self._lock:
            now = time.monotonic()
            if self._self_test is not None and now - self._self_test[0] < _SELF_TEST_TTL_S:
                return self._self_test[1]
            error: str | None = None
            try:
                builder = c2pa.Builder(build_manifest({"model": "self-test"}, {}, "self-test"))
                with builder, self._signer() as signer:
                    builder.sign(signer, "image/png", io.BytesIO(_tiny_png()), io.BytesIO())
            except Exception as exc:
                error = f"test signing failed: {self._reason(exc)}"
            self._self_test = (now, error)
            return error

    def health(self) -> dict:
        """Whether signing works now, with the certificate's subject, expiry and any error."""
        leaf = self.credentials.leaf
        problems = certificate_problems(self.credentials)
        error = "; ".join(problems) if problems else self._run_self_test()
        return {
            "ok": error is None,
            "source": self.credentials.source,
            "alg": self.credentials.alg,
            "subject": self.credentials.subject_cn,
            "not_after": leaf.not_valid_after_utc.astimezone(dt.timezone.utc).isoformat(),
            "error": error,
        }
