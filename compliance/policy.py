"""The decision: release, block or review, with the reasons in words and the rule behind each.

Each matched work is decided by one rule, recorded so a lawyer can follow it:
- a licence in force that the clip's tenant holds for the work (or for all its owner's works),
  for any model or for the clip's model: release (rule `licence`, its id);
- else the work's policy (rule `policy`): `block` blocks a strong match and holds a weak one for
  review, `review` holds, `track` releases and the use is recorded for the rights holder,
  `allow` releases. A licence out of force (expired, revoked, not yet valid, another model) is
  named in the reasons, and the policy decides.
The verdict is the strictest of the works' outcomes (block, then review, then release).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from clipgate.settings import Settings
from compliance.alignment import WorkMatch

VERDICTS = ("release", "block", "review")
_STRICTNESS = {"block": 2, "review": 1, "release": 0}


@dataclass(frozen=True)
class Decision:
    verdict: str  # one of VERDICTS
    reasons: list[str]
    # One per matched work: work_id, title, owner, rule (licence or policy), policy,
    # licence_id (or None), outcome (release, block or review).
    rules: list[dict[str, Any]] = field(default_factory=list)

    @property
    def decided_by(self) -> list[dict[str, Any]]:
        """The rules whose outcome is the verdict: what a lawyer reads first."""
        if not self.rules:
            return [{"rule": "no_match", "outcome": "release"}]
        return [r for r in self.rules if r["outcome"] == self.verdict]

    @property
    def licence_ids(self) -> list[str]:
        """The licences that released a matched work (each once)."""
        return list(dict.fromkeys(r["licence_id"] for r in self.rules if r["rule"] == "licence"))


def _covers(licence: dict[str, Any], m: WorkMatch) -> bool:
    if licence.get("work_id") is not None:
        return str(licence["work_id"]) == str(m.work_id)
    return licence.get("owner") == m.owner


def _day(v: dt.datetime) -> str:
    return v.isoformat(timespec="seconds")


def _licence_rule(m: WorkMatch, licences: list[dict[str, Any]], model: str | None,
                  now: dt.datetime) -> tuple[dict[str, Any] | None, list[str]]:
    """The licence in force that releases m, if any, and why the others covering it do not."""
    notes = []
    # Most specific first: a licence of the work before one of its owner's catalogue.
    for lic in sorted((x for x in licences if _covers(x, m)),
                      key=lambda x: (x.get("work_id") is None, str(x["id"]))):
        lid = str(lic["id"])
        if lic.get("revoked_at") is not None:
            notes.append(f"licence {lid} was revoked {_day(lic['revoked_at'])}")
        elif lic["valid_from"] > now:
            notes.append(f"licence {lid} is valid only from {_day(lic['valid_from'])}")
        elif lic.get("valid_until") is not None and lic["valid_until"] <= now:
            notes.append(f"licence {lid} expired {_day(lic['valid_until'])}")
        elif lic.get("model") and lic["model"] != model:
            notes.append(f"licence {lid} covers model {lic['model']!r}, not {model or 'unknown'!r}")
        else:
            return lic, notes
    return None, notes


def decide(
    matches: list[WorkMatch], settings: Settings, *, frames_sampled: int, still: bool = False,
    licences: list[dict[str, Any]] | None = None, model: str | None = None,
    now: dt.datetime | None = None,
) -> Decision:
    """Decide each matched work by a licence in force or by its policy; the strictest outcome is
    the verdict. licences: rows (id, work_id or owner, model, valid_from, valid_until,
    revoked_at, tenant_name) the clip's tenant holds; model: the model that made the clip.

    A match is strong when it spans at least block_min_frames matched clip frames (or every frame
    of a clip that has fewer), or a segment that long in seconds at the sampling rate (a held shot
    is sampled once): one stray frame is worth a human look, not an automatic block.
    """
    now = now or dt.datetime.now(dt.UTC)
    needed = min(settings.block_min_frames, frames_sampled)
    # A held shot is sampled once however long it lasts: its segment's length counts too.
    long_enough = settings.block_min_frames / settings.sample_fps
    reasons: dict[str, list[str]] = {"block": [], "review": [], "release": []}
    rules = []
    for m in matches:
        strong = m.frames_matched >= needed or any(
            s.duration_s >= long_enough - 1e-6 for s in m.segments)
        where = "in the image" if still else "at " + ", ".join(
            f"{s.clip_start:g}-{s.clip_end:g} s" for s in m.segments)
        desc = f'"{m.title}" ({m.owner}): {"+".join(m.signals)} {where}, score {m.score:.3f}'
        lic, notes = _licence_rule(m, licences or [], model, now)
        fallback = f" ({'; '.join(notes)}: the work's policy decides)" if notes else ""
        if lic is not None:
            outcome = "release"
            until = _day(lic["valid_until"]) if lic.get("valid_until") else "open-ended"
            for_model = f" for model {lic['model']!r}" if lic.get("model") else ""
            reason = (f"matches protected work {desc}; licensed to tenant "
                      f"{lic.get('tenant_name') or lic.get('tenant_id')} by licence {lic['id']} "
                      f"(until {until}){for_model}")
        elif m.policy == "block" and strong:
            outcome, reason = "block", f"matches protected work {desc}; its policy is block"
        elif m.policy == "block":
            outcome = "review"
            reason = (f"weak match ({m.frames_matched} frame) with protected work {desc}; "
                      "a human decides")
        elif m.policy in ("track", "allow"):
            outcome = "release"
            reason = f"matches protected work {desc}; its policy is {m.policy}" + (
                ": released, and the use is reported to the rights holder"
                if m.policy == "track" else ": released")
        else:  # review, or a policy this code does not know: a person decides (fail closed)
            outcome, reason = "review", f"matches protected work {desc}; its policy is {m.policy}"
        reasons[outcome].append(reason + fallback)
        rules.append({"work_id": str(m.work_id), "title": m.title, "owner": m.owner,
                      "rule": "licence" if lic is not None else "policy", "policy": m.policy,
                      "licence_id": str(lic["id"]) if lic is not None else None,
                      "outcome": outcome})
    if not rules:
        return Decision("release", ["no protected work matched"], [])
    verdict = max((r["outcome"] for r in rules), key=_STRICTNESS.__getitem__)
    ordered = reasons["block"] + reasons["review"] + reasons["release"]
    return Decision(verdict, ordered, rules)
