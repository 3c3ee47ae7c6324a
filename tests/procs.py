"""Processes as /proc shows them, for tests that check what runs under a process (Linux only)."""

from __future__ import annotations

from pathlib import Path


def children(pid: int) -> list[int]:
    """The direct children of `pid`."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def descendants(pid: int) -> list[int]:
    """Every process under `pid`: its children, their children, and so on."""
    found, todo = [], children(pid)
    while todo:
        found.extend(todo)
        todo = [c for p in todo for c in children(p)]
    return found


def alive(pid: int) -> bool:
    """True while `pid` runs (a zombie does not count)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
