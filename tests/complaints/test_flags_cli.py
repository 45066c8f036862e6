"""The CLI: the ML team's `clipgate flags list|export|handle`, the claims' periodic commands, and
exit code 2 on bad input."""

from __future__ import annotations

import csv
import io
import json

import pytest

from complaints import decide_claim
from tests.complaints.conftest import actor_of, file_and_assign, make_account


@pytest.fixture
def flagged(settings, tmp_path, holder, reviewer, copied_release):
    claim = file_and_assign(settings, tmp_path, holder, reviewer, copied_release)
    return decide_claim(actor_of(reviewer), claim["id"], revision=claim["revision"],
                        outcome="uphold", reason="copy", actions=["exclude_training"],
                        settings=settings)


def test_flags_export_list_and_handle(cli, tmp_path, flagged):
    r = cli("flags", "export", "--format", "jsonl")
    assert r.exit_code == 0, r.output
    (line,) = r.output.splitlines()
    flag = json.loads(line)
    assert flag["claim_id"] == flagged["id"] and flag["work_id"] == flagged["work"]["id"]
    assert flag["work_title"] == "Astronaut" and flag["model_versions"] == [
        {"model": "gen", "version": "1"}]
    assert flag["handled_at"] is None

    out = tmp_path / "flags.csv"
    r = cli("flags", "export", "--format", "csv", "--out", out)
    assert r.exit_code == 0, r.output
    (row,) = list(csv.DictReader(io.StringIO(out.read_text())))
    assert row["id"] == flag["id"] and json.loads(row["model_versions"]) == flag["model_versions"]
    assert int(row["claim_number"]) == flagged["number"]

    r = cli("flags", "list")
    assert r.exit_code == 0 and flag["id"] in r.output and "gen 1" in r.output
    r = cli("flags", "handle", flag["id"], "--note", "removed from the v4 training set")
    assert r.exit_code == 0, r.output
    assert cli("flags", "export").output == ""  # no open flags left
    r = cli("flags", "export", "--all")
    assert json.loads(r.output)["handled_note"] == "removed from the v4 training set"
    assert json.loads(r.output)["handled_by"] == "system:clipgate"


def test_flags_cli_bad_input_exits_2(cli, tmp_path, settings):
    r = cli("flags", "export", "--format", "xml")
    assert r.exit_code == 2 and "format must be one of jsonl, csv" in r.output
    r = cli("flags", "handle", "00000000-0000-0000-0000-000000000000", "--note", "x")
    assert r.exit_code == 2 and "no retraining flag" in r.output
    r = cli("flags", "handle", "nope", "--note", " ")
    assert r.exit_code == 2 and "note is required" in r.output
    r = cli("flags", "export", "--out", tmp_path / "missing-dir" / "f.jsonl")
    assert r.exit_code == 2 and "cannot write" in r.output
    account = make_account(settings, "reviewer")
    r = cli("keys", "create", "rev", "--role", "reviewer")
    assert r.exit_code == 2 and "name the account" in r.output
    r = cli("keys", "create", "rev", "--role", "reviewer", "--account", account["id"])
    assert r.exit_code == 0 and r.output.startswith("cg_")


def test_claims_periodic_commands(cli, settings, tmp_path, holder, reviewer, copied_release):
    from clipgate import apikeys, db
    from complaints import actor_for_key, file_counter_notice, get_claim

    claim = file_and_assign(settings, tmp_path, holder, reviewer, copied_release)
    upheld = decide_claim(actor_of(reviewer), claim["id"], revision=claim["revision"],
                          outcome="uphold", reason="copy", actions=["takedown"],
                          settings=settings)
    gen = actor_for_key(apikeys.create_key("g", "generator", settings)[0])
    file_counter_notice(gen, release_id=str(copied_release["id"]), statement="ours",
                        contact="legal@gen.example",
                        settings=settings.model_copy(update={"counter_notice_wait_s": 0}))
    r = cli("claims", "restore-due")
    assert r.exit_code == 0 and "restored 1 release(s)" in r.output, r.output
    assert get_claim(actor_of(holder), upheld["id"], settings=settings)["release"][
        "status"] == "active"

    # A claim left submitted (say the broker was down) is triaged by the command.
    with db.connection(settings) as conn:
        conn.execute("UPDATE claims SET state = 'submitted', state_since = now() - "
                     "interval '1 hour' WHERE id = %s", (claim["id"],))
    r = cli("claims", "triage-stuck")
    assert r.exit_code == 0 and "queued 1 claim(s)" in r.output, r.output
    again = get_claim(actor_of(reviewer), claim["id"], settings=settings)
    assert again["state"] == "triaged" and again["history"][-1]["action"] == "claim.triage"

    r = cli("claims", "send-notices")
    assert r.exit_code == 0 and "sent" in r.output


@pytest.mark.parametrize("title", ['=HYPERLINK("https://evil.example","open")', "+1+1",
                                   "-2+3", "@SUM(A1:A2)"])
def test_csv_cells_that_a_spreadsheet_would_run_are_escaped(cli, settings, flagged, title):
    from clipgate import db

    with db.connection(settings) as conn:
        conn.execute("UPDATE works SET title = %s", (title,))
    r = cli("flags", "export", "--format", "csv")
    assert r.exit_code == 0, r.output
    (row,) = list(csv.DictReader(io.StringIO(r.output)))
    assert row["work_title"] == "'" + title
    # JSON lines are data, not a sheet: unchanged there.
    assert json.loads(cli("flags", "export").output)["work_title"] == title
