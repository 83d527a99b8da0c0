"""The container health probe: `python -m tabserve.deploy.healthcheck /v2/health/ready`.

Exit 0 when the server on 127.0.0.1:$TABSERVE_PORT answers 200 on the path, 1 otherwise.
Standard library only, so it starts fast and the image needs no curl.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

DEFAULT_PATH = "/v2/health/ready"


def probe(path: str = DEFAULT_PATH, port: int | None = None, timeout: float = 4.0) -> bool:
    """True when GET http://127.0.0.1:PORT/PATH answers 200."""
    port = port if port is not None else int(os.environ.get("TABSERVE_PORT", "8000"))
    url = f"http://127.0.0.1:{port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def main(argv: list[str]) -> int:
    """Exit status for Docker's HEALTHCHECK: 0 healthy, 1 not."""
    return 0 if probe(argv[1] if len(argv) > 1 else DEFAULT_PATH) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
