"""A second, real Unix user for the multi-user cases (CI runs as root: made here, removed
afterwards)."""

from __future__ import annotations

import os
import pwd
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import pytest


@dataclass(frozen=True)
class Stranger:
    name: str
    uid: int
    gid: int

    def python(self, code: str, *args: str) -> list[str]:
        """A command line that runs ``code`` as this user: the interpreter starts as root,
        imports what it needs, then drops to the user (the venv need not be readable)."""
        drop = f"import os; os.setgroups([]); os.setgid({self.gid}); os.setuid({self.uid})\n"
        return ["python3", "-c", code.replace("# DROP\n", drop), *args]


@pytest.fixture
def stranger() -> Iterator[Stranger]:
    if os.getuid() != 0:
        pytest.skip("making a second Unix user needs root (CI runs as root)")
    name = f"enctest{secrets.token_hex(3)}"
    subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name], check=True, capture_output=True)
    try:
        pw = pwd.getpwnam(name)
        yield Stranger(name, pw.pw_uid, pw.pw_gid)
    finally:
        subprocess.run(["userdel", name], check=True, capture_output=True)
