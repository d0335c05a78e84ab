"""How much memory a run may use: the smaller of what the machine has available and what the process's control
group (container limit) leaves, with headroom.

The machine: `MemAvailable` of /proc/meminfo (free pages plus the page cache and reclaimable memory the kernel can
hand out; "free pages" alone moves by a factor of 2 with the page cache, which is what the first guard read). The
container: cgroup v2 `memory.max - memory.current`, the tightest over the process's cgroup and its parents; cgroup
v1 `memory.limit_in_bytes - (memory.usage_in_bytes - total_inactive_file)` (inactive file cache is reclaimable, as
`docker stats` counts it). A limit of 2^60 bytes or more, or "max", is no limit.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

HEADROOM = 0.8  # a run plans with 80 % of what is free: other processes, the interpreter, fragmentation
UNLIMITED = 1 << 60


@dataclass(frozen=True)
class MemoryBudget:
    """Bytes a run may plan with (after the headroom) and where the bound came from."""

    usable: int
    free: int
    source: str

    def describe(self) -> str:
        return f"{self.usable / 2**30:.1f} GiB usable ({HEADROOM:.0%} of {self.free / 2**30:.1f} GiB free, {self.source})"


def _int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    if text == "max":
        return UNLIMITED
    try:
        return int(text)
    except ValueError:
        return None


def _meminfo(path: Path) -> int | None:
    try:
        for line in path.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_free(root: Path, self_cgroup: Path) -> int | None:
    """What the process's control group leaves (bytes), or None without a limit."""
    try:
        lines = self_cgroup.read_text().splitlines()
    except OSError:
        return None
    best: int | None = None
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, rel = parts
        if controllers == "":  # cgroup v2: the unified hierarchy
            base = root / "unified" if (root / "unified" / "cgroup.controllers").exists() else root
            here = base / rel.lstrip("/")
            for d in [here, *here.parents]:
                if not str(d).startswith(str(base)):
                    break
                lim, cur = _int(d / "memory.max"), _int(d / "memory.current")
                if lim is not None and lim < UNLIMITED and cur is not None:
                    best = min(best if best is not None else lim, max(lim - cur, 0))
        elif "memory" in controllers.split(","):  # cgroup v1
            base = root / "memory"
            for d in (base / rel.lstrip("/"), base):  # inside a container the group is mounted at the root
                lim, used = _int(d / "memory.limit_in_bytes"), _int(d / "memory.usage_in_bytes")
                if lim is None or used is None:
                    continue
                if lim < UNLIMITED:
                    inactive = 0
                    try:
                        for s in (d / "memory.stat").read_text().splitlines():
                            if s.startswith("total_inactive_file "):
                                inactive = int(s.split()[1])
                    except (OSError, ValueError):
                        pass
                    free = max(lim - (used - inactive), 0)
                    best = min(best if best is not None else free, free)
                break
    return best


def memory_budget(root: str | os.PathLike[str] = "/sys/fs/cgroup", self_cgroup: str | os.PathLike[str] = "/proc/self/cgroup",
                  meminfo: str | os.PathLike[str] = "/proc/meminfo") -> MemoryBudget:  # fmt: skip
    """The memory a run may plan with (see the module docstring); paths are parameters for tests."""
    machine = _meminfo(Path(meminfo))
    group = _cgroup_free(Path(root), Path(self_cgroup))
    if machine is None:
        try:
            machine = int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
            machine = 8 << 30
    if group is not None and group < machine:
        free, source = group, "the container (cgroup) memory limit"
    else:
        free, source = machine, "available memory (MemAvailable)"
    return MemoryBudget(int(free * HEADROOM), int(free), source)


__all__ = ["HEADROOM", "MemoryBudget", "memory_budget"]
