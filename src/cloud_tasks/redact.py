"""Keeping secrets out of what Cloud Tasks prints: credentials and startup-script secrets.

Two rules, documented in ``docs/reliability.md``:

- **Known secret values** (``access_key``, ``secret_key`` and the values of secret variables
  of the startup script, registered with ``register_secret`` when a configuration is
  resolved) are replaced by ``***`` in every error line and log line the CLI prints
  (``redact``).
- **Secret variables of the startup script**: a line assigning a variable (``NAME=value`` or
  ``export NAME=value``) is secret when the name contains ``SECRET``, ``TOKEN``, ``PASSWORD``,
  ``PASSWD``, ``PASSPHRASE``, ``CREDENTIAL``, ``PRIVATE``, ``API_KEY``/``APIKEY``,
  ``ACCESS_KEY`` or ``AUTH`` (any case), or when the line ends with the comment
  ``# cloud_tasks: secret``. ``--dry-run`` shows such lines as ``NAME=***``
  (``redact_startup_script``). The instances still get the real script.

Cloud Tasks never writes the startup script or credentials into events, the task database
or ``--format json`` output; these rules cover the places that show text the user wrote.
"""

from __future__ import annotations

import re
import threading

MASK = "***"
SECRET_MARKER = "cloud_tasks: secret"
SECRET_NAME = re.compile(
    r"SECRET|TOKEN|PASSWORD|PASSWD|PASSPHRASE|CREDENTIAL|PRIVATE|API_?KEY|ACCESS_?KEY|AUTH",
    re.IGNORECASE,
)
#: Values shorter than this are not registered: masking "1" or "yes" everywhere would hide
#: harmless text and protect nothing.
MIN_SECRET_LENGTH = 6

_ASSIGNMENT = re.compile(
    r"^(?P<lead>\s*(?:export\s+)?)(?P<name>[A-Za-z_][A-Za-z0-9_]*)=(?P<value>.*?)"
    r"(?P<marker>\s+#\s*" + re.escape(SECRET_MARKER) + r"\s*)?$"
)
_known: set[str] = set()
_lock = threading.Lock()


def is_secret_name(name: str) -> bool:
    """Whether a variable called ``name`` holds a secret by the naming rule."""
    return SECRET_NAME.search(name) is not None


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def secret_assignments(script: str) -> dict[str, str]:
    """``{name: value}`` of every secret variable the startup script assigns."""
    found: dict[str, str] = {}
    for line in script.splitlines():
        match = _ASSIGNMENT.match(line)
        if match and (match["marker"] or is_secret_name(match["name"])):
            found[match["name"]] = _unquote(match["value"])
    return found


def redact_startup_script(script: str) -> str:
    """The script with the value of every secret variable replaced by ``***``."""
    lines = []
    for line in script.splitlines(keepends=True):
        body = line.rstrip("\r\n")
        ending = line[len(body) :]
        match = _ASSIGNMENT.match(body)
        if match and (match["marker"] or is_secret_name(match["name"])):
            body = f"{match['lead']}{match['name']}={MASK}{match['marker'] or ''}"
        lines.append(body + ending)
    return "".join(lines)


def register_secret(value: str | None) -> None:
    """Remember a secret value so that ``redact`` hides it wherever it shows up."""
    if value and len(value) >= MIN_SECRET_LENGTH:
        with _lock:
            _known.add(value)


def register_startup_script(script: str | None) -> None:
    """Register the values of the startup script's secret variables."""
    for value in secret_assignments(script or "").values():
        register_secret(value)


def redact(text: str) -> str:
    """``text`` with every registered secret value replaced by ``***``."""
    with _lock:
        known = sorted(_known, key=len, reverse=True)
    for value in known:
        if value in text:
            text = text.replace(value, MASK)
    return text


__all__ = [
    "MASK",
    "SECRET_MARKER",
    "is_secret_name",
    "redact",
    "redact_startup_script",
    "register_secret",
    "register_startup_script",
    "secret_assignments",
]
