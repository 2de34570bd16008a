"""`watchkeeper ack` and `silence add` record who acted: the OS user unless ``--author`` says otherwise."""

from __future__ import annotations

import getpass
import os
import pwd

import pytest

from watchkeeper.cli_alerts import ack_command, os_user, silence_group

LOGIN_VARIABLES = ("LOGNAME", "USER", "LNAME", "USERNAME")


def test_ack_without_author_is_the_os_user_even_without_user_set(monkeypatch: pytest.MonkeyPatch) -> None:
    """`acked by ?` came from an empty $USER (cron, containers, sudo -i): the password database knows the name."""
    for name in LOGIN_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    me = pwd.getpwuid(os.getuid()).pw_name
    assert ack_command.make_context("ack", ["drift-123"]).params["author"] == me
    add = silence_group.commands["add"]
    assert add.make_context("add", ["--model", "fraud", "--for", "1h"]).params["author"] == me
    assert ack_command.make_context("ack", ["drift-123", "--author", "ana"]).params["author"] == "ana"


def test_the_login_name_wins_when_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOGNAME", "oncall-ana")
    assert ack_command.make_context("ack", ["drift-123"]).params["author"] == "oncall-ana"


def test_a_uid_without_a_name_still_says_who(monkeypatch: pytest.MonkeyPatch) -> None:
    def nameless() -> str:
        raise OSError("No username set in the environment")  # getpass with no variable and no passwd entry

    monkeypatch.setattr(getpass, "getuser", nameless)
    assert os_user() == f"uid-{os.getuid()}"
    assert ack_command.make_context("ack", ["drift-123"]).params["author"] == f"uid-{os.getuid()}"
