"""Compliance's counters: verdicts by the policy that decided them and the gate's latency per
stage, recorded as each check is decided. (The gauges read when scraped live beside what they
read: the held clips' backlog in compliance.held, the certificate's expiry in compliance.release.)"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from clipgate import metrics

VERDICTS = metrics.counter(
    "clipgate_verdicts", "Gate verdicts, by verdict and the policy that decided them (licence: "
    "a licence released the work; none: nothing matched)", ["verdict", "policy"])
# Stages: decode/fingerprint signals (the fingerprint's own timings), search, aggregate, decide,
# record. From milliseconds (a still, a hash hit) to tens of seconds (a long clip on a CPU).
STAGE_SECONDS = metrics.histogram(
    "clipgate_gate_stage_seconds", "Time the gate spent in each stage of one check", ["stage"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120))


def deciding_policy(decided_by: Sequence[Mapping[str, Any]]) -> str:
    """The label for what decided a verdict: the first deciding rule's policy, 'licence', or
    'none' when nothing matched."""
    if not decided_by or decided_by[0].get("rule") == "no_match":
        return "none"
    first = decided_by[0]
    return "licence" if first.get("rule") == "licence" else str(first.get("policy") or "unknown")


def record_check(verdict: str, decided_by: Sequence[Mapping[str, Any]],
                 timings: Mapping[str, float]) -> None:
    VERDICTS.labels(verdict=verdict, policy=deciding_policy(decided_by)).inc()
    for stage, seconds in timings.items():
        STAGE_SECONDS.labels(stage=stage).observe(max(0.0, float(seconds)))
