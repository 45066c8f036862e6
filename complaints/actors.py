"""Who is acting: an account signed in to the pages, an API key, or a task of clipgate itself.

Every function of the complaints package takes an Actor first, checks its role there, and writes
its `label` into the audit log. The web pages build one from the session (`actor_for_account`),
the API from the caller's key (`actor_for_key`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ROLES = ("rights_holder", "reviewer", "admin", "generator", "system")
# Roles that work the review queue: they see every claim.
STAFF_ROLES = ("reviewer", "admin")


@dataclass(frozen=True)
class Actor:
    kind: str  # "account" | "api_key" | "system"
    id: str  # account id, API key id, or task name
    role: str  # one of ROLES
    account_id: str | None = None  # the account acted for (None for generator/system)

    def __post_init__(self) -> None:
        if self.kind not in ("account", "api_key", "system"):
            raise ValueError(f"unknown actor kind {self.kind!r}")
        if self.role not in ROLES:
            raise ValueError(f"unknown role {self.role!r}; expected one of {', '.join(ROLES)}")

    @property
    def label(self) -> str:
        """How the audit log names this actor: "account:<id>", "api_key:<id>", "system:<name>"."""
        return f"{self.kind}:{self.id}"

    @property
    def is_staff(self) -> bool:
        return self.role in STAFF_ROLES


def actor_for_account(account: dict[str, Any]) -> Actor:
    """The actor for a signed-in account (a row of `accounts`)."""
    return Actor("account", str(account["id"]), account["role"], str(account["id"]))


def actor_for_key(key_record: dict[str, Any]) -> Actor:
    """The actor for an API key record; rights-holder and reviewer keys act for their account."""
    account_id = key_record.get("account_id")
    return Actor("api_key", str(key_record["id"]), key_record["role"],
                 str(account_id) if account_id else None)


def system(task: str = "clipgate") -> Actor:
    """clipgate itself, acting in a task (triage, rescan, restore_due)."""
    return Actor("system", task, "system")


SYSTEM = system()
