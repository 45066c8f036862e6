"""Accounts: Argon2 hashing, password and email rules, duplicates, disabling, the CLI."""

from __future__ import annotations

import psycopg
import pytest
from typer.testing import CliRunner

from clipgate.errors import BadInput, Conflict, NotFound
from complaints import accounts

PASSWORD = "correct horse battery"


def test_password_is_stored_as_argon2id_and_checked(settings):
    a = accounts.create_account("Ana@Example.org ", PASSWORD, "Ana Reyes", "rights_holder",
                                "Reyes Films", settings=settings)
    assert a["email"] == "ana@example.org"  # lower-cased and trimmed
    assert "password_hash" not in a
    with psycopg.connect(settings.database_url) as conn:
        stored = conn.execute("SELECT password_hash FROM accounts WHERE id = %s",
                              (a["id"],)).fetchone()[0]
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    assert accounts.authenticate("ANA@example.org", PASSWORD, settings=settings)["id"] == a["id"]
    assert accounts.authenticate("ana@example.org", PASSWORD + "x", settings=settings) is None
    assert accounts.authenticate("nobody@example.org", PASSWORD, settings=settings) is None
    assert accounts.authenticate("ana@example.org", "", settings=settings) is None


@pytest.mark.parametrize("password, words", [
    ("short", "at least 12 characters"),
    ("            ", "only spaces"),
    ("x" * 2000, "at most"),
    # Long enough, but on the common and breached lists zxcvbn ships, or a variant of one.
    ("password1234", "too easy to guess"),
    ("qwertyuiop123", "too easy to guess"),
    ("iloveyou12345", "too easy to guess"),
    ("P@ssw0rd2024!", "too easy to guess"),
    ("aaaaaaaaaaaaaaaa", "too easy to guess"),
])
def test_weak_passwords_are_refused_in_words(settings, password, words):
    with pytest.raises(BadInput, match=words):
        accounts.create_account("a@example.org", password, "A", "reviewer", settings=settings)
    assert accounts.list_accounts(settings=settings) == []


@pytest.mark.parametrize("email, name, role, words", [
    ("not-an-email", "A", "reviewer", "does not look like an email"),
    ("a@example.org", "  ", "reviewer", "give a name"),
    ("a@example.org", "A", "generator", "role must be one of"),
])
def test_bad_fields_are_refused(settings, email, name, role, words):
    with pytest.raises(BadInput, match=words):
        accounts.create_account(email, PASSWORD, name, role, settings=settings)
    assert accounts.list_accounts(settings=settings) == []


def test_an_email_is_used_once_whatever_its_case(settings):
    first = accounts.create_account("dup@example.org", PASSWORD, "One", "reviewer",
                                    settings=settings)
    with pytest.raises(Conflict, match="already exists") as e:
        accounts.create_account("DUP@example.org", PASSWORD, "Two", "rights_holder",
                                settings=settings)
    assert e.value.existing_id == str(first["id"])
    assert len(accounts.list_accounts(settings=settings)) == 1


def test_a_disabled_account_cannot_sign_in_and_its_sessions_end(settings):
    a = accounts.create_account("gone@example.org", PASSWORD, "Gone", "reviewer",
                                settings=settings)
    done = accounts.disable_account(str(a["id"]), settings=settings)
    assert done["disabled_at"] is not None
    assert done["session_epoch"] == a["session_epoch"] + 1
    assert accounts.authenticate("gone@example.org", PASSWORD, settings=settings) is None
    again = accounts.disable_account(str(a["id"]), settings=settings)  # no change the second time
    assert again["session_epoch"] == done["session_epoch"]
    assert accounts.list_accounts(include_disabled=False, settings=settings) == []
    with pytest.raises(NotFound):
        accounts.disable_account("not-a-uuid", settings=settings)


def test_webhook_and_lookups(settings):
    a = accounts.create_account("hook@example.org", PASSWORD, "Hook", "rights_holder",
                                settings=settings)
    assert accounts.set_webhook(str(a["id"]), "https://hooks.example.org/x",
                                settings=settings)["webhook_url"] == "https://hooks.example.org/x"
    with pytest.raises(BadInput, match="http"):
        accounts.set_webhook(str(a["id"]), "ftp://x", settings=settings)
    assert accounts.set_webhook(str(a["id"]), "", settings=settings)["webhook_url"] is None
    accounts.end_sessions(str(a["id"]), settings=settings)
    # Each change is in the audit log, by the account itself.
    from clipgate import db
    with db.connection(settings) as conn:
        rows = conn.execute("SELECT actor, action, detail FROM audit_log WHERE subject_id = %s "
                            "ORDER BY id", (str(a["id"]),)).fetchall()
    assert [(r["action"], r["detail"].get("webhook_host")) for r in rows] == [
        ("account.create", None), ("account.set_webhook", "hooks.example.org"),
        ("account.set_webhook", None), ("account.end_sessions", None)]
    assert {r["actor"] for r in rows[1:]} == {f"account:{a['id']}"}
    assert accounts.get_account(str(a["id"]), settings=settings)["email"] == "hook@example.org"
    assert accounts.get_account("nope", settings=settings) is None
    assert [x["role"] for x in accounts.list_accounts(role="rights_holder", settings=settings)] == [
        "rights_holder"]


def test_cli_accounts_create_list_disable(settings, monkeypatch):
    from clipgate import cli
    from clipgate.settings import get_settings

    monkeypatch.setenv("CLIPGATE_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("CLIPGATE_DATA_DIR", str(settings.data_dir))
    get_settings.cache_clear()
    runner = CliRunner()
    try:
        made = runner.invoke(cli.app, ["accounts", "create", "--email", "Rev@example.org",
                                       "--name", "Rita Review", "--role", "reviewer",
                                       "--password-stdin"], input=PASSWORD + "\n")
        assert made.exit_code == 0, made.output
        account_id = made.output.split()[0]
        bad = runner.invoke(cli.app, ["accounts", "create", "--email", "x@example.org",
                                      "--name", "X", "--role", "reviewer", "--password-stdin"],
                            input="short\n")
        assert bad.exit_code == 2 and "12 characters" in bad.output
        dup = runner.invoke(cli.app, ["accounts", "create", "--email", "rev@example.org",
                                      "--name", "X", "--role", "reviewer", "--password-stdin"],
                            input=PASSWORD + "\n")
        assert dup.exit_code == 2 and "already exists" in dup.output
        listed = runner.invoke(cli.app, ["accounts", "list"])
        assert listed.exit_code == 0 and "rev@example.org" in listed.output
        assert "1 accounts" in listed.output
        off = runner.invoke(cli.app, ["accounts", "disable", account_id])
        assert off.exit_code == 0 and "disabled" in off.output
        missing = runner.invoke(cli.app, ["accounts", "disable", "nope"])
        assert missing.exit_code == 2
    finally:
        get_settings.cache_clear()


def test_creating_and_disabling_are_audited(settings):
    from complaints import actors

    admin = accounts.create_account("boss@example.org", PASSWORD, "Boss", "admin",
                                    settings=settings)
    rev = accounts.create_account("r@example.org", PASSWORD, "R", "reviewer",
                                  created_by=actors.actor_for_account(admin), settings=settings)
    accounts.disable_account(str(rev["id"]), by=actors.actor_for_account(admin),
                             settings=settings)
    with psycopg.connect(settings.database_url) as conn:
        rows = conn.execute("SELECT actor, action, subject_id FROM audit_log "
                            "WHERE subject_type = 'account' ORDER BY id").fetchall()
    assert rows == [
        (f"account:{admin['id']}", "account.create", str(admin["id"])),  # signed up themselves
        (f"account:{admin['id']}", "account.create", str(rev["id"])),
        (f"account:{admin['id']}", "account.disable", str(rev["id"])),
    ]
