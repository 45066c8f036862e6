"""What the domains' routers share: dependencies (settings, API keys, uploads) and error mapping.

`clipgate.app` assembles the routers; the domains import only the names below.
"""

from clipgate.api.deps import (
    ApiKeyDep,
    AdminKeyDep,
    ClaimsKeyDep,
    CounterNoticeKeyDep,
    CursorQuery,
    GeneratorKeyDep,
    LimitQuery,
    ReviewerKeyDep,
    RightsHolderKeyDep,
    SettingsDep,
    discard_upload,
    get_app_settings,
    public_url,
    require_roles,
    save_upload,
    upload_name,
    uploaded,
)

__all__ = [
    "ApiKeyDep",
    "AdminKeyDep",
    "ClaimsKeyDep",
    "CounterNoticeKeyDep",
    "CursorQuery",
    "GeneratorKeyDep",
    "LimitQuery",
    "ReviewerKeyDep",
    "RightsHolderKeyDep",
    "SettingsDep",
    "discard_upload",
    "get_app_settings",
    "public_url",
    "require_roles",
    "save_upload",
    "upload_name",
    "uploaded",
]
