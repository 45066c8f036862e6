"""Real C2PA signing and verification of a small H.264 clip (no mocks)."""

from __future__ import annotations

import datetime as dt
import json
import stat
import struct
from pathlib import Path

import av
import numpy as np
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from clipgate.settings import Settings
from compliance.certs import (
    DEV_SUBJECT,
    Credentials,
    certificate_problems,
    ensure_dev_credentials,
    load_credentials,
)
from compliance.signing import TRAINED_ALGORITHMIC_MEDIA, ClipSigner, SigningError
from compliance.verify import read_manifest

GENERATOR = {"model": "procedural", "version": "0.3.1", "prompt_sha256": "ab" * 32, "seed": 7}
COMPLIANCE = {
    "check_id": "chk-1",
    "release_id": "rel-9",
    "index_version": 4,
    "verdict": "allow",
    "checked_at": "2026-11-02T10:00:00+00:00",
}


def _make_clip(path: Path, frames: int = 64) -> None:
    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        for i in range(frames):
            # Noise keeps mdat large, so a flipped byte in its middle is far from the manifest.
            img = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
            img[:, :, 0] = (i * 4) % 256
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _top_level_box(data: bytes, kind: bytes) -> tuple[int, int]:
    """(offset, size) of the first top-level ISO-BMFF box of this type."""
    pos = 0
    while pos + 8 <= len(data):
        size, typ = struct.unpack(">I4s", data[pos : pos + 8])
        if size == 1:
            size = struct.unpack(">Q", data[pos + 8 : pos + 16])[0]
        elif size == 0:
            size = len(data) - pos
        if typ == kind:
            return pos, size
        pos += size
    raise AssertionError(f"no {kind!r} box")


def _frame_count(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    _make_clip(path)
    return path


@pytest.fixture(scope="module")
def creds(tmp_path_factory: pytest.TempPathFactory) -> Credentials:
    return ensure_dev_credentials(tmp_path_factory.mktemp("data") / "keys")


@pytest.fixture(scope="module")
def signed(clip: Path, creds: Credentials) -> tuple[Path, dict]:
    dst = clip.parent / "signed.mp4"
    result = ClipSigner(creds).sign(clip, dst, generator=GENERATOR, compliance=COMPLIANCE, title="clip 1")
    return dst, result


def test_signed_clip_decodes_and_reads_trusted(signed: tuple[Path, dict], creds: Credentials) -> None:
    dst, result = signed
    assert result["alg"] == "es256" and result["signer"] == DEV_SUBJECT
    assert _frame_count(dst) == 64

    report = read_manifest(dst, creds.trust_anchor_pem)
    assert report.state == "Trusted", report.validation_errors
    assert report.validation_errors == []
    assert report.manifest is not None and report.manifest["label"] == result["manifest_label"]
    assert report.manifest["title"] == "clip 1"
    assert report.manifest["claim_generator_info"][0]["name"] == "clipgate"

    a = report.assertions
    assert a["org.clipgate.generator"] == GENERATOR
    assert a["org.clipgate.compliance"] == COMPLIANCE
    (action,) = a["c2pa.actions.v2"]["actions"]
    assert action["action"] == "c2pa.created"
    assert action["digitalSourceType"] == TRAINED_ALGORITHMIC_MEDIA
    assert action["softwareAgent"] == {"name": "procedural", "version": "0.3.1"}
    entries = a["cawg.training-mining"]["entries"]
    assert set(entries) == {"cawg.ai_generative_training", "cawg.ai_training", "cawg.ai_inference",
                            "cawg.data_mining"}
    assert all(v == {"use": "notAllowed"} for v in entries.values())
    json.dumps(report.to_dict())  # the API returns it as JSON


def test_without_anchor_reads_valid(signed: tuple[Path, dict]) -> None:
    report = read_manifest(signed[0], None)
    assert report.state == "Valid"
    assert [e["code"] for e in report.validation_errors] == ["signingCredential.untrusted"]


def test_flipped_media_byte_reads_invalid(signed: tuple[Path, dict], creds: Credentials, tmp_path: Path) -> None:
    data = bytearray(signed[0].read_bytes())
    offset, size = _top_level_box(bytes(data), b"mdat")
    assert size > 100_000
    data[offset + size // 2] ^= 0x01
    tampered = tmp_path / "tampered.mp4"
    tampered.write_bytes(bytes(data))
    report = read_manifest(tampered, creds.trust_anchor_pem)
    assert report.state == "Invalid"
    assert "assertion.bmffHash.mismatch" in {e["code"] for e in report.validation_errors}


def test_unsigned_and_unknown_files(clip: Path, creds: Credentials, tmp_path: Path) -> None:
    assert read_manifest(clip, creds.trust_anchor_pem).state == "NoManifest"
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    with pytest.raises(ValueError, match="not one C2PA supports"):
        read_manifest(notes, None)
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video" * 100)
    assert read_manifest(junk, None).state == "Invalid"


def test_dev_credentials_created_once(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    first = ensure_dev_credentials(keys)
    files = {name: (keys / name).read_bytes() for name in ("ca.pem", "chain.pem", "signer.key")}
    second = ensure_dev_credentials(keys)
    assert first == second
    assert files == {name: (keys / name).read_bytes() for name in files}
    assert stat.S_IMODE((keys / "signer.key").stat().st_mode) == 0o600
    assert first.source == "dev-ca" and first.subject_cn == DEV_SUBJECT
    assert first.trust_anchor_pem == files["ca.pem"] and first.chain_pem.endswith(files["ca.pem"])
    assert certificate_problems(first) == []
    assert not list(keys.glob("*.tmp"))
    with pytest.raises(ValueError, match="cannot sign ed25519"):
        ensure_dev_credentials(keys, "ed25519")  # a changed alg must not silently mint a new CA


def test_configured_pair_is_used(clip: Path, tmp_path: Path) -> None:
    # An Ed25519 set made elsewhere stands in for credentials from a real CA.
    made = ensure_dev_credentials(tmp_path / "elsewhere", "ed25519")
    (tmp_path / "chain.pem").write_bytes(made.chain_pem)
    (tmp_path / "key.pem").write_bytes(made.key_pem)
    settings = Settings(data_dir=tmp_path / "data", signing_cert_chain=tmp_path / "chain.pem",
                        signing_key=tmp_path / "key.pem", signing_alg="ed25519")
    creds = load_credentials(settings)
    assert creds.source == "configured" and creds.alg == "ed25519"
    assert creds.chain_pem == made.chain_pem and creds.trust_anchor_pem == made.trust_anchor_pem
    assert not settings.keys_dir.exists()  # no dev CA made behind the configured one

    signer = ClipSigner.from_settings(settings)
    dst = tmp_path / "out.mov"
    mov = tmp_path / "clip.mov"
    mov.write_bytes(clip.read_bytes())
    assert signer.sign(mov, dst, generator=GENERATOR, compliance=COMPLIANCE)["alg"] == "ed25519"
    assert read_manifest(dst, creds.trust_anchor_pem).state == "Trusted"
    health = signer.health()
    assert health["ok"] and health["source"] == "configured" and health["error"] is None


@pytest.mark.parametrize("only", ["signing_cert_chain", "signing_key"])
def test_half_configured_pair_is_refused(tmp_path: Path, only: str) -> None:
    settings = Settings(data_dir=tmp_path, **{only: tmp_path / "x.pem"})
    with pytest.raises(ValueError, match="CLIPGATE_SIGNING_CERT_CHAIN and CLIPGATE_SIGNING_KEY"):
        load_credentials(settings)


def test_refuses_non_video_and_cleans_up_failures(creds: Credentials, tmp_path: Path) -> None:
    signer = ClipSigner(creds)
    still = tmp_path / "frame.png"
    still.write_bytes(b"\x89PNG")
    with pytest.raises(ValueError, match=r"\.mp4 or \.mov"):
        signer.sign(still, tmp_path / "out.mp4", generator=GENERATOR, compliance=COMPLIANCE)

    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypisom" + b"\xff" * 500)
    dst = tmp_path / "out.mp4"
    dst.write_bytes(b"stale output of an earlier run")
    with pytest.raises(SigningError, match="corrupt.mp4"):
        signer.sign(corrupt, dst, generator=GENERATOR, compliance=COMPLIANCE)
    assert not dst.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corrupt.mp4", "frame.png"]


def test_health_names_certificate_problems(creds: Credentials, clip: Path, tmp_path: Path) -> None:
    assert ClipSigner(creds).health()["ok"] is True
    # A leaf without ExtendedKeyUsage: c2pa itself says only "the certificate is invalid".
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)

    def cert(cn: str, pub, ca: bool) -> x509.Certificate:
        b = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
             .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")]))
             .public_key(pub).serial_number(x509.random_serial_number())
             .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=1))
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        return b.sign(ca_key, hashes.SHA256())

    chain = b"".join(cert(*a).public_bytes(serialization.Encoding.PEM)
                     for a in (("no eku", key.public_key(), False), ("test CA", ca_key.public_key(), True)))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    bad = Credentials(chain_pem=chain, key_pem=key_pem, trust_anchor_pem=chain, alg="es256", source="configured")
    health = ClipSigner(bad).health()
    assert health["ok"] is False and "ExtendedKeyUsage" in health["error"]
    assert health["subject"] == "no eku" and health["not_after"].startswith(str((now + dt.timedelta(days=1)).year))
    with pytest.raises(SigningError, match="ExtendedKeyUsage"):
        ClipSigner(bad).sign(clip, tmp_path / "x.mp4", generator=GENERATOR, compliance=COMPLIANCE)
    assert not (tmp_path / "x.mp4").exists()
