"""Errors that reach an operator: each names the field, the limit or the thing that is wrong."""

from __future__ import annotations

from pathlib import Path

# An id beyond this cannot exist: ids are INTEGER columns (32-bit on PostgreSQL).
MAX_ID = 2**31 - 1


class UserError(Exception):
    """Bad input or a request the current state does not allow; shown as one line, exit code 2."""


class StoryRejected(UserError):
    """A story failed its checks; ``problems`` lists every one, per account. ``outcome`` says what did
    not happen (queueing, or an edit), for the line that introduces them."""

    def __init__(self, problems: list[str], outcome: str = "story not queued") -> None:
        super().__init__(f"{outcome}, {len(problems)} problem(s): " + "; ".join(problems))
        self.problems, self.outcome = problems, outcome


def shown(value: str, limit: int = 60) -> str:
    """``value`` quoted for an error line: escaped, so it stays on one line, and cut, so that a 10 MB
    typo does not become a 10 MB error."""
    if len(value) <= limit:
        return repr(value)
    return f"{value[:limit]!r}… ({len(value)} characters)"


def shown_path(path: str) -> str:
    """A file name for an error line: as typed when it is plain, quoted when it holds a line break or
    other unprintable characters."""
    return path if path.isprintable() and len(path) <= 200 else shown(path, 80)


def read_text_file(path: str, field: str, limit: int | None = None) -> str:
    """A UTF-8 text file an operator named with ``field``, or one line saying why it cannot be read."""
    name = shown_path(path)
    try:
        if limit is not None and (size := Path(path).stat().st_size) > limit:
            raise UserError(f"{field}: {name} is {size} bytes; it may be at most {limit}")
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"{field}: cannot read {name}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UserError(f"{field}: {name} is not UTF-8 text") from None
    except ValueError:  # a NUL in the name
        raise UserError(f"{field}: {name} is not a file name") from None


def parse_id(value: str) -> int | None:
    """The row id ``value`` names, or None if it is not one (``isdigit`` alone accepts ``'٣'``)."""
    value = value.strip()
    if not (value.isascii() and value.isdigit()):
        return None
    digits = value.lstrip("0") or "0"
    if len(digits) > len(str(MAX_ID)):  # before int(): it refuses strings of over 4300 digits
        return 0
    number = int(digits)
    return number if number <= MAX_ID else 0  # 0 is never an id: "no such row", not an overflow
