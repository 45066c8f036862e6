"""Complaints: rights-holder claims, the legal review queue and what an upheld claim does.

The public surface is below; the web pages (complaints.web) and the API (complaints.routes) use
only these. Every function takes the acting `Actor` first and `settings=` as a keyword, and raises
clipgate.errors BadInput (400), NotFound (404), Conflict (409) or Unavailable (503). A rights
holder asking for another's claim gets NotFound, never Forbidden.
"""

import compliance
from clipgate import apikeys
from complaints.audit import record_licence_change, record_review_decision
from complaints.accounts import get_account as account
from complaints.actors import SYSTEM, Actor, actor_for_account, actor_for_key
from complaints.claims import claim_media, file_claim, get_claim, list_claims, service_levels
from complaints.counter import escalate_counter_notice, file_counter_notice, restore_due
from complaints.flags import export_flags, flags_page, handle_flag, list_flags
from complaints.workflow import STATES, answer_claim, assign_claim, decide_claim

apikeys.use_accounts(account)  # keys of rights holders and reviewers act for their accounts
# Decisions on held clips are audited with the claims', in the decision's transaction.
compliance.on_review_decided(record_review_decision)
compliance.on_licence_changed(record_licence_change)

__all__ = [
    "STATES",
    "SYSTEM",
    "Actor",
    "account",
    "actor_for_account",
    "actor_for_key",
    "answer_claim",
    "assign_claim",
    "claim_media",
    "decide_claim",
    "escalate_counter_notice",
    "export_flags",
    "file_claim",
    "file_counter_notice",
    "get_claim",
    "handle_flag",
    "list_claims",
    "flags_page",
    "list_flags",
    "restore_due",
    "service_levels",
]
