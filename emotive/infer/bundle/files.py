"""A bundle's folder: its file names, SHA256SUMS over every file, and the check against it.

    write_sums(root)          # `emotive release` writes SHA256SUMS last
    verify_bundle(root)       # every file against SHA256SUMS, before anything is parsed

Nothing of a bundle is read before `verify_bundle` has hashed every file: a changed, missing
or extra file is a one-line UserError naming it.
"""

from __future__ import annotations

import hashlib
import pathlib

from emotive.errors import UserError

CONFIG_FILE = "config.json"
SUMS_FILE = "SHA256SUMS"
CARD_FILE = "README.md"
# Download metadata huggingface_hub keeps inside a local_dir; never read, so not checked.
IGNORED_DIRS = (".cache/huggingface",)


def is_bundle(path) -> bool:
    """A folder with SHA256SUMS and config.json (a bundle, not an orbax run)."""
    path = pathlib.Path(path)
    return (path / SUMS_FILE).is_file() and (path / CONFIG_FILE).is_file()


def sha256_file(path: pathlib.Path) -> str:
    """The hex SHA-256 of a file's bytes."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def bundle_files(root: pathlib.Path) -> list[str]:
    """Every file under `root` (relative POSIX names, sorted) but SHA256SUMS and ignored
    download metadata."""
    names = []
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if any(rel == d or rel.startswith(d + "/") for d in IGNORED_DIRS):
            continue
        if p.is_symlink() or not (p.is_dir() or p.is_file()):
            raise UserError(f"bundle {root}: {rel} is not a plain file; a bundle holds plain "
                            "files only")
        if p.is_dir():
            continue
        if rel != SUMS_FILE:
            names.append(rel)
    return names


def write_sums(root: pathlib.Path) -> pathlib.Path:
    """SHA256SUMS over every other file of `root`, in `sha256sum` format; returns its path."""
    root = pathlib.Path(root)
    lines = [f"{sha256_file(root / name)}  {name}\n" for name in bundle_files(root)]
    (root / SUMS_FILE).write_text("".join(lines))
    return root / SUMS_FILE


def read_sums(root: pathlib.Path) -> dict[str, str]:
    """{file name: hex digest} from the bundle's SHA256SUMS; UserError for a malformed line."""
    path = root / SUMS_FILE
    sums = {}
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"bundle {root}: {SUMS_FILE} is unreadable ({exc})") from None
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        digest, sep, name = line.partition(" ")
        name = name[1:] if name[:1] in (" ", "*") else name  # text or binary mode marker
        if not sep or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest) \
                or not name or name.startswith("/") or ".." in name.split("/"):
            raise UserError(f"bundle {root}: {SUMS_FILE} line {number} is not "
                            "'<sha256>  <file>'; the bundle is damaged")
        if name in sums:
            raise UserError(f"bundle {root}: {SUMS_FILE} lists {name} twice")
        sums[name] = digest
    return sums


def verify_bundle(root) -> list[str]:
    """Checks every file of bundle `root` against its SHA256SUMS, before anything else is
    read; returns the file names. UserError naming the first changed, missing or extra file."""
    root = pathlib.Path(root)
    if not root.is_dir():
        raise UserError(f"bundle {root} does not exist; pass a folder written by "
                        "`emotive release`")
    if not (root / SUMS_FILE).is_file():
        raise UserError(f"bundle {root} has no {SUMS_FILE}; it was not written by `emotive "
                        "release` (or the file was removed)")
    sums = read_sums(root)
    present = bundle_files(root)
    missing = sorted(set(sums) - set(present))
    if missing:
        raise UserError(f"bundle {root}: {missing[0]} is listed in {SUMS_FILE} but missing; "
                        "download the bundle again")
    for name in present:
        if name not in sums:
            raise UserError(f"bundle {root}: {name} is not listed in {SUMS_FILE}; an extra "
                            "file is refused (remove it, or download the bundle again)")
    for name in present:
        if sha256_file(root / name) != sums[name]:
            raise UserError(f"bundle {root}: {name} does not match its SHA256SUMS entry; the "
                            "file was changed or damaged, download the bundle again")
    return present
