"""The enclave client: the workbench and the command line.

Textual paints on a grid of 1/TEXTUAL_FPS-second slots (60 a second by default): after a frame
that ran long, as when four panes stream, the next frame waits for the next free slot, so a key
press waited up to two slots before it showed. 120 halves that wait without painting more
streamed text (the panes repaint at ``stream_hz``); bench/bench_tui.py measured it. It has to be
set before Textual is imported, and a value the person set is kept.
"""

import os

os.environ.setdefault("TEXTUAL_FPS", "120")
