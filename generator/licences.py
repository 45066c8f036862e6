"""Licences granted to tenants: the generator knows its tenants, so it resolves a tenant's name
(404 for an unknown one) and hands compliance, which keeps the licences and weighs them at the
gate, the tenant's id. Operators use these through the API and `clipgate licences`."""

from __future__ import annotations

import datetime as dt
from typing import Any

import compliance
import index
from clipgate import db
from clipgate.settings import Settings
from generator import tenants


def grant_licence(*, tenant: str, work_id: str | None = None, owner: str | None = None,
                  model: str | None = None, valid_from: dt.datetime | None = None,
                  valid_until: dt.datetime | None = None, note: str | None = None,
                  by: str = "system:cli", by_role: str = "system",
                  settings: Settings | None = None) -> dict[str, Any]:
    """License work_id (or every work of owner) to the tenant named tenant. NotFound for an
    unknown tenant or work, Unprocessable for a window that ends before it starts."""
    with db.connection(settings) as conn:
        row = tenants.tenant_row(conn, tenant)
    return compliance.create_licence(
        tenant_id=str(row["id"]), tenant_name=row["name"], work_id=work_id, owner=owner,
        model=model, valid_from=valid_from, valid_until=valid_until, note=note, by=by,
        by_role=by_role, settings=settings)


def list_licences(*, tenant: str | None = None, work_id: str | None = None,
                  settings: Settings | None = None) -> list[dict[str, Any]]:
    """Licences newest first; of one tenant (404 if unknown) and/or covering one work (its own
    licences and its owner's catalogue licences)."""
    tenant_id = None
    if tenant is not None:
        with db.connection(settings) as conn:
            tenant_id = str(tenants.tenant_row(conn, tenant)["id"])
    work_ids = owners = None
    if work_id is not None:
        work = index.get_work(work_id, settings)
        work_ids, owners = [str(work["id"])], [work["owner"]]
    return compliance.list_licences(tenant_id=tenant_id, work_ids=work_ids, owners=owners,
                                    settings=settings)
