#!/usr/bin/env python3
"""Fails when a doc names a make target or a shardlog subcommand/flag that does not exist.

Looks at code only (fenced blocks and `inline spans`) in README.md, tests/README.md and
docs/*.md:
- `make [VAR=value ...] TARGET...`: every TARGET must be a rule in the Makefile.
- `shardlog SUB [SUB ...] [args] [--flag ...]` (also target/release/shardlog): each SUB must be
  a subcommand listed by `shardlog ... --help` and each --flag must appear in the help of the
  subcommand reached. Needs the binary (--binary); without it only make targets are checked,
  and the script says so.

usage: check-doc-commands.py [--binary target/release/shardlog]
`make lint` runs it without the binary; `make doc-commands` (part of `make test`, after the
build) with it.
"""

import re
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", ROOT / "tests" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^\s*```")
INLINE = re.compile(r"`([^`\n]+)`")
MAKE = re.compile(r"(?:^|[\s;&|(])make\s+((?:[^\s;&|)`]+\s*)+)")
SHARDLOG = re.compile(r"(?:^|[\s;&|(/])shardlog((?:\s+[^\s;&|)`#]+)*)")
RULE = re.compile(r"^([A-Za-z0-9_.-]+(?:\s+[A-Za-z0-9_.-]+)*)\s*::?(?!=)", re.M)


def code_snippets(path: Path):
    """(line number, text) of each fenced line and each inline code span."""
    fenced = False
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if fenced:
            yield number, line
        else:
            for span in INLINE.findall(line):
                yield number, span


def make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    targets = set()
    for match in RULE.finditer(text):
        targets.update(match.group(1).split())
    return targets


CHECKED = {"make": 0, "shardlog": 0}


def check_make(snippet: str, targets: set[str]) -> list[str]:
    errors = []
    for match in MAKE.finditer(snippet):
        for word in match.group(1).split():
            if "=" in word or word.startswith("-"):
                continue
            if not re.fullmatch(r"[a-z][a-z0-9-]*", word):
                break  # prose or a placeholder, not a target
            CHECKED["make"] += 1
            if word not in targets:
                errors.append(f"make {word}: no such target in the Makefile")
    return errors


@lru_cache(maxsize=None)
def help_text(binary: str, path: tuple[str, ...]) -> str | None:
    proc = subprocess.run([binary, *path, "--help"], capture_output=True, text=True, timeout=30)
    return proc.stdout if proc.returncode == 0 else None


def subcommands(help_out: str) -> set[str]:
    names, inside = set(), False
    for line in help_out.splitlines():
        if line.startswith("Commands:"):
            inside = True
        elif inside and line.strip() and line.startswith("  "):
            names.add(line.split()[0])
        elif inside and not line.startswith(" "):
            inside = False
    return names


def check_shardlog(snippet: str, binary: str) -> list[str]:
    errors = []
    for match in SHARDLOG.finditer(snippet):
        words = match.group(1).split()
        if not words or not re.fullmatch(r"[a-z][a-z-]*", words[0]):
            continue  # "shardlog" as a name, not a command
        CHECKED["shardlog"] += 1
        path: list[str] = []
        help_out = help_text(binary, ())
        flags = []
        skip_value = False
        for word in words:
            if skip_value:
                skip_value = False
                continue
            if word.startswith("--"):
                flag = word.split("=", 1)[0]
                flags.append(flag)
                # `--flag VALUE`: the value is not a subcommand.
                skip_value = "=" not in word and f"{flag} <" in help_out
                continue
            commands = subcommands(help_out)
            if commands and word not in commands:
                errors.append(f"shardlog {' '.join([*path, word])}: no such subcommand")
                break
            if commands:
                path.append(word)
                help_out = help_text(binary, tuple(path))
                if help_out is None:
                    errors.append(f"shardlog {' '.join(path)} --help fails")
                    break
        else:
            for flag in flags:
                if flag != "--help" and not re.search(rf"(?<![\w-]){re.escape(flag)}\b", help_out):
                    errors.append(f"shardlog {' '.join(path)}: no flag {flag}")
    return errors


def main() -> int:
    binary = None
    if len(sys.argv) == 3 and sys.argv[1] == "--binary":
        binary = sys.argv[2]
    elif len(sys.argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    targets = make_targets()
    failures = 0
    for doc in DOCS:
        for number, snippet in code_snippets(doc):
            snippet = re.sub(r"(^|\s)#.*$", "", snippet)  # a shell comment
            errors = check_make(snippet, targets)
            if binary:
                errors += check_shardlog(snippet, binary)
            for error in errors:
                print(f"{doc.relative_to(ROOT)}:{number}: {error}   [{snippet.strip()}]")
                failures += 1
    checked = f"{CHECKED['make']} make targets" + (
        f" and {CHECKED['shardlog']} shardlog commands" if binary
        else " (no --binary: shardlog commands not checked)")
    if failures:
        print(f"check-doc-commands: {failures} reference(s) to things that do not exist")
        return 1
    print(f"check-doc-commands: {checked} in {len(DOCS)} docs exist")
    return 0


if __name__ == "__main__":
    sys.exit(main())
