"""Commands the test set-up runs as root: directly when the tests already are root, else by sudo."""

from __future__ import annotations

import os


def as_root(*, prompt: bool = True) -> list[str]:
    """The prefix that runs a command as root; without `prompt`, sudo fails instead of asking."""
    if os.geteuid() == 0:
        return []
    return ["sudo"] if prompt else ["sudo", "-n"]
