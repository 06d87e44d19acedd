"""proxy.settings: named admin tokens (environment and file) and who a command records."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from proxy.settings import Settings, SettingsError, admin_tokens, command_user, git_email


def test_named_tokens_from_the_variable_and_the_file(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text("# the on-call team\n\ncy:tok3\n  # indented comment\n dee : t:o:k4 \n")
    environ = {"STRANGLER_ADMIN_TOKENS": " alice:tok1 ,bob:tok2,", "STRANGLER_ADMIN_TOKENS_FILE":
               str(path), "STRANGLER_ADMIN_TOKEN": "old"}  # fmt: skip
    settings = Settings.from_env(environ)
    assert settings.admin_tokens == (
        ("alice", "tok1"), ("bob", "tok2"), ("cy", "tok3"), ("dee", "t:o:k4")
    )  # fmt: skip
    assert settings.named_tokens()[-1] == ("admin", "old")
    assert Settings.from_json(settings.to_json()) == settings
    assert "tok1" not in repr(settings) and "old" not in repr(settings)


def test_no_tokens() -> None:
    settings = Settings.from_env({})
    assert (settings.admin_tokens, settings.named_tokens()) == ((), ())


EXPECTED = "STRANGLER_ADMIN_TOKENS: expected name:token"


@pytest.mark.parametrize(
    ("environ", "lines", "message"),
    [
        ({"STRANGLER_ADMIN_TOKENS": "alice"}, None, EXPECTED),
        ({"STRANGLER_ADMIN_TOKENS": "alice:"}, None, EXPECTED),
        ({"STRANGLER_ADMIN_TOKENS": ":s3cret"}, None, EXPECTED),
        ({"STRANGLER_ADMIN_TOKENS": "s3cret"}, None, EXPECTED),
        ({"STRANGLER_ADMIN_TOKENS": "a b:s3cret"}, None,
         "STRANGLER_ADMIN_TOKENS: invalid name (letters, digits and . _ @ + -)"),
        ({"STRANGLER_ADMIN_TOKENS": "a:s3cret,a:other"}, None,
         "admin tokens: the name 'a' is given twice"),
        ({"STRANGLER_ADMIN_TOKENS": "a:s3cret"}, "b:s3cret\n",
         "admin tokens: the token of 'a' is given to another name too"),
        ({}, "# ok\nalice:tok1\ns3cret\n", "{path}:3: expected name:token"),
    ],
)  # fmt: skip
def test_bad_tokens_are_refused_without_showing_them(
    tmp_path: Path, environ: dict[str, str], lines: str | None, message: str
) -> None:
    path = tmp_path / "tokens"
    if lines is not None:
        path.write_text(lines)
        environ = {**environ, "STRANGLER_ADMIN_TOKENS_FILE": str(path)}
    with pytest.raises(SettingsError) as caught:
        admin_tokens(environ)
    assert str(caught.value) == message.format(path=path)
    assert "s3cret" not in str(caught.value)


def test_a_missing_token_file(tmp_path: Path) -> None:
    path = tmp_path / "nope"
    with pytest.raises(SettingsError) as caught:
        admin_tokens({"STRANGLER_ADMIN_TOKENS_FILE": str(path)})
    message = f"STRANGLER_ADMIN_TOKENS_FILE: cannot read {path}: No such file or directory"
    assert str(caught.value) == message


def no_login() -> str:
    raise OSError("No username set in the environment")


def git_config(tmp_path: Path, email: str | None) -> dict[str, str]:
    """An environment whose git reads only a config file of ours (with `email`, or none)."""
    config = tmp_path / "gitconfig"
    config.write_text("" if email is None else f"[user]\n\temail = {email}\n")
    return {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "GIT_CONFIG_GLOBAL": str(config),
            "GIT_CONFIG_NOSYSTEM": "1", "GIT_DIR": str(tmp_path / "no-repo")}  # fmt: skip


def test_who_a_command_records_in_order(tmp_path: Path) -> None:
    environ = {**git_config(tmp_path, "ana@example.org"), "STRANGLER_USER": "bob"}
    assert command_user("cy", environ, login=no_login) == "cy"
    assert command_user(" ", environ, login=no_login) == "bob"
    assert command_user(None, environ, login=lambda: "dee") == "bob"
    del environ["STRANGLER_USER"]
    assert command_user(None, environ, login=lambda: "dee") == "dee"
    assert command_user(None, environ, login=no_login) == "ana@example.org"

    def no_passwd_entry() -> str:
        raise KeyError("getpwuid(): uid not found: 1234")

    assert command_user(None, environ, login=no_passwd_entry) == "ana@example.org"
    assert command_user(None, git_config(tmp_path, None), login=no_login) == "unknown"


def test_git_email_without_git(tmp_path: Path) -> None:
    assert git_email({"PATH": str(tmp_path)}) is None  # no git on PATH: None, no error
    assert subprocess.run(["git", "--version"], capture_output=True).returncode == 0
