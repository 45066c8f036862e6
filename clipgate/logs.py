"""Logging set-up shared by the CLI, the API and the workers."""

from __future__ import annotations

import logging
import warnings


class _DropOpenClipRandomNotice(logging.Filter):
    # open_clip says "No pretrained weights loaded" on the root logger; index.embedder says the
    # same louder, with what it means for verdicts.
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("No pretrained weights loaded")


def configure(level: str = "INFO") -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger().setLevel(level.upper())
    for handler in logging.getLogger().handlers:
        handler.addFilter(_DropOpenClipRandomNotice())
    # The embedded PostgreSQL narrates every start and stop at INFO; only its problems matter.
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    # pgserver asks platformdirs for a runtime dir that containers and CI often lack; harmless.
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
