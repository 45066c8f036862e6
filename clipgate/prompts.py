"""What results and manifests carry of a prompt: its digest, never its text."""

from __future__ import annotations

import hashlib


def prompt_sha256(prompt: str) -> str:
    """Hex sha256 of the prompt's UTF-8 bytes: what results and manifests carry instead of the prompt."""
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()
