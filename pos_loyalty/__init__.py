"""pos-loyalty: the customer-loyalty module that runs on a shop's till."""


def _installed_version() -> str:
    """The installed distribution's version, read from its metadata file: importlib.metadata would
    cost 50 ms of imports at every start-up for this one line."""
    import os
    import sys

    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for name in names:
            if name.startswith("pos_loyalty-") and name.endswith(".dist-info"):
                try:
                    with open(os.path.join(entry or ".", name, "METADATA"), encoding="utf-8") as fh:
                        for line in fh:
                            if line.startswith("Version:"):
                                return line.split(":", 1)[1].strip()
                            if not line.strip():
                                break
                except OSError:
                    continue
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pos-loyalty")
    except PackageNotFoundError:  # running from a source tree that was not installed
        return "0.0.0+src"


__version__ = _installed_version()
