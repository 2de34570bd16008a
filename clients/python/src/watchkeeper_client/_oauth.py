"""SASL OAUTHBEARER for kafka-python: the token from a command's output or from a file.

Managed Kafka services hand out short-lived tokens: a cloud CLI prints one
(``command``), or a sidecar or Kubernetes keeps one fresh in a file (``file``).
The provider reads it again once it is ``refresh`` seconds old, so a renewed
token is used at the next connection; the token itself is never logged.
"""

from __future__ import annotations

import shlex
import subprocess
import threading
import time
from pathlib import Path

try:  # kafka-python 3
    from kafka.net.sasl.oauth import AbstractTokenProvider
except ImportError:  # pragma: no cover - kafka-python 2.x
    from kafka.sasl.oauth import AbstractTokenProvider  # type: ignore[no-redef]

# How long a token command may run before the connection attempt fails.
COMMAND_TIMEOUT_S = 30.0


class TokenProvider(AbstractTokenProvider):  # type: ignore[misc]
    """An OAUTHBEARER token for ``sasl_oauth_token_provider=``, from ``command`` (run without a shell, its
    standard output stripped) or ``file`` (its content stripped), exactly one of them.

    Example
    -------
    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "token"
    >>> _ = path.write_text("eyJhbGciOi.example\\n")
    >>> TokenProvider(file=path).token()
    'eyJhbGciOi.example'
    >>> TokenProvider(command="echo from-a-command").token()
    'from-a-command'

    Use with the publisher (security options go to kafka-python)::

        Publisher("kafka:9093", security_protocol="SASL_SSL", sasl_mechanism="OAUTHBEARER",
                  sasl_oauth_token_provider=TokenProvider(file="/var/run/secrets/kafka/token"))
    """

    def __init__(self, *, command: str | None = None, file: str | Path | None = None, refresh: float = 60.0) -> None:
        if (command is None) == (file is None):
            raise ValueError("give exactly one of command= or file=")
        self.command = shlex.split(command) if command is not None else None
        self.file = Path(file) if file is not None else None
        self.refresh = refresh
        self._lock = threading.Lock()
        self._token: str | None = None
        self._read_at = 0.0

    def __repr__(self) -> str:  # never shows the token
        source = f"command={self.command[0]!r}" if self.command else f"file={str(self.file)!r}"
        return f"TokenProvider({source})"

    def token(self) -> str:
        with self._lock:
            if self._token is None or time.monotonic() - self._read_at >= self.refresh:
                self._token = self._read()
                self._read_at = time.monotonic()
            return self._token

    def _read(self) -> str:
        if self.file is not None:
            try:
                token = self.file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise RuntimeError(f"OAUTHBEARER token file {str(self.file)!r}: {exc.strerror}") from None
        else:
            assert self.command is not None
            try:
                done = subprocess.run(self.command, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S)
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise RuntimeError(f"OAUTHBEARER token command {self.command[0]!r} failed: {exc}") from None
            if done.returncode != 0:
                detail = (done.stderr.strip().splitlines() or [""])[0][:300]
                raise RuntimeError(
                    f"OAUTHBEARER token command {self.command[0]!r} exited with {done.returncode}: {detail}"
                )
            token = done.stdout.strip()
        if not token:
            raise RuntimeError(f"OAUTHBEARER token from {self!r} is empty")
        return token
