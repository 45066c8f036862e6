"""What a check tells a generator key about the protected works.

Admins and reviewers see a check whole. A generator's key is the party the registry protects
works from: by default (CLIPGATE_CHECK_DISCLOSURE=deciding) it learns the id, title and owner
only of the works whose matches decided the verdict, which it needs to act on; the other matched
works and the nearest misses ("candidates") keep their scores without naming the work. `all`
shows every match (still not the misses); `none` names no work at all.
"""

from __future__ import annotations

import copy
from typing import Any

from clipgate.settings import Settings

FULL_VIEW_ROLES = ("admin", "reviewer")
_NAMING = ("work_id", "title", "owner")
_ORDER = ("block", "review", "release")  # compliance.policy lists reasons in this order
_UNNAMED = "matched a protected work that did not decide the verdict (outcome {outcome})"


def for_role(check: dict[str, Any], role: str, settings: Settings) -> dict[str, Any]:
    """The check as this key's role may see it (a copy when anything is taken out)."""
    if role in FULL_VIEW_ROLES:
        return check
    mode = settings.check_disclosure
    out = copy.deepcopy(check)
    verdict = out.get("verdict")
    rules = out.get("rules") or []
    named = {str(r.get("work_id")) for r in rules
             if mode == "all" or (mode == "deciding" and r.get("outcome") == verdict)}
    if rules and "reasons" in out:
        out["reasons"] = _reasons(out["reasons"], rules, named)
    for key in ("matches", "rules", "decided_by"):
        for item in out.get(key) or []:
            if "work_id" in item and str(item["work_id"]) not in named:
                _unname(item)
    for item in out.get("candidates") or []:
        _unname(item)
    return out


def _unname(item: dict[str, Any]) -> None:
    for k in _NAMING:
        item.pop(k, None)


def _reasons(reasons: list[str], rules: list[dict[str, Any]], named: set[str]) -> list[str]:
    """Each rule has one reason (policy.decide): block ones first, then review, then release,
    each in the rules' order. A reason that names an unnamed work is said without its name."""
    ordered = [r for outcome in _ORDER for r in rules if r.get("outcome") == outcome]
    if len(ordered) != len(reasons):  # not the shape decide() makes: name no work
        return [f"the verdict rests on {len(rules)} matched protected work(s); ask the operator "
                "for the reasons"]
    return [reason if str(rule.get("work_id")) in named
            else _UNNAMED.format(outcome=rule.get("outcome"))
            for rule, reason in zip(ordered, reasons)]
