"""Signing credentials: a development CA made on first run, or a configured chain and key.

C2PA rejects certificates that do not fit its profile with the unhelpful message
"the certificate is invalid", so this module also checks the profile itself and names
what is missing (see `certificate_problems`).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ALGS = ("es256", "ps256", "ed25519")
DEV_SUBJECT = "clipgate development signer"
DEV_CA_SUBJECT = "clipgate development CA"
# Long enough that a dev install does not expire under a developer; the CA key is never
# stored, so a renewal means deleting keys_dir (and trusting the new CA).
_CA_DAYS = 3650
_LEAF_DAYS = 1825

CA_FILE, CHAIN_FILE, KEY_FILE = "ca.pem", "chain.pem", "signer.key"


@dataclass(frozen=True)
class Credentials:
    """A signing certificate chain, its key and the anchors that verification trusts."""

    chain_pem: bytes  # leaf first, then CA
    key_pem: bytes  # PKCS#8 PEM
    trust_anchor_pem: bytes  # the CA cert(s) that verification trusts
    alg: str  # 'es256' | 'ps256' | 'ed25519'
    source: str  # 'dev-ca' or 'configured'

    @property
    def leaf(self) -> x509.Certificate:
        """The end-entity (signing) certificate."""
        return x509.load_pem_x509_certificates(self.chain_pem)[0]

    @property
    def subject_cn(self) -> str:
        """Common name of the signing certificate ('' when it has none)."""
        return _common_name(self.leaf)


def _common_name(cert: x509.Certificate) -> str:
    attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attrs[0].value) if attrs else ""


def _new_key(alg: str) -> Any:
    if alg == "es256":
        return ec.generate_private_key(ec.SECP256R1())
    if alg == "ps256":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if alg == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(f"unknown signing algorithm {alg!r}; expected one of {', '.join(ALGS)}")


def _alg_fits_key(alg: str, key: Any) -> bool:
    if alg == "es256":
        return isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
    if alg == "ps256":
        return isinstance(key, rsa.RSAPrivateKey)
    if alg == "ed25519":
        return isinstance(key, ed25519.Ed25519PrivateKey)
    raise ValueError(f"unknown signing algorithm {alg!r}; expected one of {', '.join(ALGS)}")


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _pkcs8(key: Any) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _make_dev_set(alg: str) -> tuple[bytes, bytes, bytes]:
    """Return (ca_pem, chain_pem, key_pem) for a fresh development CA and signer."""
    now = dt.datetime.now(dt.timezone.utc)
    # The CA is always P-256: C2PA checks the algorithm the issuer used, and ECDSA is accepted
    # whatever the leaf's own algorithm is.
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "clipgate"),
         x509.NameAttribute(NameOID.COMMON_NAME, DEV_CA_SUBJECT)]
    )
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))  # tolerate small clock skew
        .not_valid_after(now + dt.timedelta(days=_CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = _new_key(alg)
    leaf_name = x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "clipgate"),
         x509.NameAttribute(NameOID.COMMON_NAME, DEV_SUBJECT)]
    )
    leaf = (
        x509.CertificateBuilder()
        .subject_name(leaf_name)
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=_LEAF_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True
        )
        # C2PA's default trust config accepts emailProtection; documentSigning alone is refused.
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    # ca_key goes out of scope here on purpose: nobody can issue more dev certs later.
    return _pem(ca), _pem(leaf) + _pem(ca), _pkcs8(key)


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)  # before any secret byte lands on disk
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def _locked(keys_dir: Path) -> Iterator[None]:
    # The API and workers may start together; without a lock each could mint its own CA and
    # sign with credentials the other's trust anchor does not know.
    with open(keys_dir / ".lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def load_private_key_pem(data: bytes, where: str) -> Any:
    """Parse an unencrypted PEM private key (PKCS#8 or traditional); ValueError names `where`."""
    try:
        return serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{where}: not an unencrypted PEM private key ({exc})") from exc


def _load_chain(data: bytes, where: str) -> list[x509.Certificate]:
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise ValueError(f"{where}: not a PEM certificate chain ({exc})") from exc
    return certs


def _build(chain_pem: bytes, key_pem: bytes, anchors_pem: bytes | None, alg: str,
           source: str, where: str) -> Credentials:
    chain = _load_chain(chain_pem, where)
    key = load_private_key_pem(key_pem, where)
    if not _alg_fits_key(alg, key):
        raise ValueError(
            f"{where}: the key is {type(key).__name__.lstrip('_')}, which cannot sign {alg}; "
            f"set CLIPGATE_SIGNING_ALG to match the key"
        )
    pub = serialization.PublicFormat.SubjectPublicKeyInfo
    if chain[0].public_key().public_bytes(serialization.Encoding.DER, pub) != key.public_key().public_bytes(
        serialization.Encoding.DER, pub
    ):
        raise ValueError(f"{where}: the private key does not belong to the first (leaf) certificate")
    if anchors_pem is None:
        anchors_pem = _pem(chain[-1])
    else:
        _load_chain(anchors_pem, f"{where} (trust anchors)")
    # Re-serialise: c2pa wants exactly PEM certs and a PKCS#8 key, and tolerates nothing else.
    return Credentials(
        chain_pem=b"".join(_pem(c) for c in chain),
        key_pem=_pkcs8(key),
        trust_anchor_pem=anchors_pem,
        alg=alg,
        source=source,
    )


def ensure_dev_credentials(keys_dir: Path, alg: str = "es256") -> Credentials:
    """Load the development CA and signer from keys_dir, creating them on first run."""
    if alg not in ALGS:
        raise ValueError(f"unknown signing algorithm {alg!r}; expected one of {', '.join(ALGS)}")
    keys_dir = Path(keys_dir)
    keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    ca_path, chain_path, key_path = keys_dir / CA_FILE, keys_dir / CHAIN_FILE, keys_dir / KEY_FILE
    with _locked(keys_dir):
        # chain.pem is written last, so it marks a complete set: without it, whatever is
        # there is the leftover of a crashed first run and is replaced.
        if not chain_path.exists():
            ca_pem, chain_pem, key_pem = _make_dev_set(alg)
            _write_atomic(key_path, key_pem, 0o600)
            _write_atomic(ca_path, ca_pem, 0o644)
            _write_atomic(chain_path, chain_pem, 0o644)
    where = f"development credentials in {keys_dir}"
    try:
        creds = _build(chain_path.read_bytes(), key_path.read_bytes(), ca_path.read_bytes(),
                       alg, "dev-ca", where)
    except ValueError as exc:
        # Most likely CLIPGATE_SIGNING_ALG changed after the set was made. Not regenerated on
        # purpose: a new CA would make every clip signed so far untrusted.
        raise ValueError(f"{exc}. Delete {keys_dir} to make a new development set.") from exc
    except FileNotFoundError as exc:
        raise ValueError(f"{where} are incomplete ({exc.filename} is missing); delete {keys_dir}") from exc
    return creds


def load_credentials(settings: Any) -> Credentials:
    """Credentials from the configured chain and key, or the development CA when neither is set."""
    chain_path, key_path = settings.signing_cert_chain, settings.signing_key
    if chain_path is None and key_path is None:
        return ensure_dev_credentials(settings.keys_dir, settings.signing_alg)
    if chain_path is None or key_path is None:
        missing = "CLIPGATE_SIGNING_CERT_CHAIN" if chain_path is None else "CLIPGATE_SIGNING_KEY"
        raise ValueError(
            "CLIPGATE_SIGNING_CERT_CHAIN and CLIPGATE_SIGNING_KEY must be set together "
            f"(or neither, for development credentials); {missing} is not set"
        )
    anchors_path = settings.trust_anchors
    try:
        chain_pem = Path(chain_path).read_bytes()
        key_pem = Path(key_path).read_bytes()
        anchors_pem = Path(anchors_path).read_bytes() if anchors_path is not None else None
    except OSError as exc:
        raise ValueError(f"cannot read signing credentials: {exc}") from exc
    return _build(chain_pem, key_pem, anchors_pem, settings.signing_alg, "configured",
                  f"CLIPGATE_SIGNING_CERT_CHAIN={chain_path}")


def certificate_problems(creds: Credentials, now: dt.datetime | None = None) -> list[str]:
    """What keeps the leaf certificate from fitting the C2PA profile (empty list: nothing found)."""
    now = now or dt.datetime.now(dt.timezone.utc)
    chain = x509.load_pem_x509_certificates(creds.chain_pem)
    leaf = chain[0]
    problems: list[str] = []
    if leaf.issuer == leaf.subject:
        problems.append("the signing certificate is self-signed; C2PA needs one issued by a CA")
    if len(chain) < 2:
        problems.append("the chain holds only the leaf; append the issuing CA certificate(s)")
    if now < leaf.not_valid_before_utc:
        problems.append(f"the signing certificate is not valid before {leaf.not_valid_before_utc.isoformat()}")
    if now > leaf.not_valid_after_utc:
        problems.append(f"the signing certificate expired on {leaf.not_valid_after_utc.isoformat()}")
    exts = leaf.extensions
    try:
        if not exts.get_extension_for_class(x509.KeyUsage).value.digital_signature:
            problems.append("KeyUsage lacks digitalSignature")
    except x509.ExtensionNotFound:
        problems.append("no KeyUsage extension (digitalSignature is required)")
    try:
        if ExtendedKeyUsageOID.EMAIL_PROTECTION not in exts.get_extension_for_class(x509.ExtendedKeyUsage).value:
            problems.append("ExtendedKeyUsage lacks emailProtection")
    except x509.ExtensionNotFound:
        problems.append("no ExtendedKeyUsage extension (emailProtection is required)")
    try:
        exts.get_extension_for_class(x509.AuthorityKeyIdentifier)
    except x509.ExtensionNotFound:
        problems.append("no AuthorityKeyIdentifier extension")
    return problems
