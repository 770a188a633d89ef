"""enclaved: the enclave inference daemon."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("enclave")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+local"
