"""``python -m training``: see :mod:`training.cli`."""

from __future__ import annotations

import sys

from common.exceptions import SettingsError
from common.logs import configure_logging
from common.settings import load_settings
from training.cli import main

if __name__ == "__main__":
    try:
        settings = load_settings()
        configure_logging(settings.log_level, settings.log_format)
    except SettingsError as exc:
        sys.exit(f"error: {exc}")
    sys.exit(main())
