"""pos-loyalty: the customer-loyalty module that runs on a shop's till."""
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("pos-loyalty")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+src"
