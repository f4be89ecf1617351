"""Windows' file-name rules, applied on every OS to every name the sidecar creates: an archive
drive moves between Macs and PCs (exFAT, NTFS), so a name Windows refuses would be a file the
archive cannot hold there. The rules are Microsoft's "Naming Files, Paths, and Namespaces":
https://learn.microsoft.com/windows/win32/fileio/naming-a-file
"""

from collections.abc import Iterable

# Reserved device names, whatever their case and extension ("nul.txt" and "NUL.tar.gz" are NUL);
# Windows 11 also reserves COM and LPT with superscript digits.
RESERVED = frozenset(
    {"CON", "PRN", "AUX", "NUL"}
    | {f"{port}{digit}" for port in ("COM", "LPT") for digit in "0123456789\u00b9\u00b2\u00b3"}
)
FORBIDDEN = frozenset('<>:"/\\|?*') | frozenset(chr(code) for code in range(32))
MAX_COMPONENT = 255  # UTF-16 code units per name (NTFS, exFAT)
MAX_PATH = 259  # characters of a full path without the \\?\ prefix: MAX_PATH (260) less the NUL


class UnportableName(ValueError):
    """A name Windows cannot hold."""


def problem(name: str) -> str | None:
    """Why Windows refuses `name` (one path component), or None when it may be created."""
    if name in ("", ".", ".."):
        return "an empty name, '.' or '..'"
    bad = sorted({c for c in name if c in FORBIDDEN})
    if bad:
        return "the characters " + " ".join(repr(c) for c in bad)
    if name[-1] in ". ":
        return "a trailing dot or space"
    if name.split(".", 1)[0].rstrip(" ").upper() in RESERVED:
        return "a reserved device name"
    if _utf16_units(name) > MAX_COMPONENT:
        return f"more than {MAX_COMPONENT} characters"
    return None


def portable(name: str) -> str:
    """`name`, or UnportableName saying why not."""
    why = problem(name)
    if why is not None:
        raise UnportableName(f"{name!r}: Windows cannot hold a name with {why}")
    return name


def path_too_long(path: str) -> bool:
    """A full path Windows refuses without long-path support (MAX_PATH)."""
    return _utf16_units(path) > MAX_PATH


def case_collisions(names: Iterable[str]) -> list[tuple[str, str]]:
    """Pairs of different names that are one file on a case-insensitive filesystem (NTFS, exFAT,
    APFS and HFS+ by default)."""
    seen: dict[str, str] = {}
    pairs = []
    for name in names:
        key = name.casefold()
        first = seen.setdefault(key, name)
        if first != name:
            pairs.append((first, name))
    return pairs


def _utf16_units(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2
