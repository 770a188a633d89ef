"""The audit log's verification in one line: green when it verified, red when it did not,
neutral while it runs or when the daemon cannot verify."""

from __future__ import annotations

import re

from textual.widgets import Static

from enclave.text import safe_text
from enclave.views import VerifyResult

_FAILED_AT = re.compile(r"^FAILED at seq \d+: ")  # how the daemon's summary begins; the badge names the seq itself
STATES = ("ok", "failed", "unknown")


class VerifyBadge(Static):
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(markup=False, id=id)

    def checking(self) -> None:
        self._show("verifying the audit log …", "unknown")

    def unavailable(self, problem: str) -> None:
        self._show(f"verification unavailable: {problem}", "unknown")

    def show(self, result: VerifyResult) -> None:
        if result.ok:
            checkpoint = f"checkpoint #{result.checkpoint_seq}" if result.checkpoint_seq else "no checkpoint yet"
            self._show(f"✓ verified · {result.records:,} records · {checkpoint}", "ok")
            return
        where = f" at #{result.bad_seq}" if result.bad_seq else ""
        self._show(f"✗ verification failed{where}: {_FAILED_AT.sub('', result.summary)}", "failed")

    def _show(self, text: str, state: str) -> None:
        self.update(" ".join(safe_text(text).split()))  # one line, whatever the daemon sent
        for s in STATES:
            self.set_class(s == state, f"-{s}")
