"""Logging set-up shared by the CLI, the API and the workers."""

from __future__ import annotations

import logging
import warnings


def configure(level: str = "INFO") -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # The embedded PostgreSQL narrates every start and stop at INFO; only its problems matter.
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    # pgserver asks platformdirs for a runtime dir that containers and CI often lack; harmless.
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
