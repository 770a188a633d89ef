"""Text from the daemon made safe for a terminal."""

from __future__ import annotations

import re

# C0/C1 control characters (ESC included) but newline and tab: model output must not be able
# to drive the terminal.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def safe_text(text: str) -> str:
    return _CONTROL.sub("\N{REPLACEMENT CHARACTER}", text)
