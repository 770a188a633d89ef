"""``python -m enclaved.audit``: the offline audit tool (``enclave audit --data DIR`` runs it)."""

import os
import sys

from enclaved.audit.cli import main

sys.exit(main(prog=os.environ.get("ENCLAVE_AUDIT_PROG", "python -m enclaved.audit")))
