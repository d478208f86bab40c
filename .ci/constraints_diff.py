"""Print how a `pip freeze` (stdin) differs from constraints.txt: `make upgrade-check`."""

from __future__ import annotations

import re
import sys


def pins(lines: list[str]) -> dict[str, str]:
    out = {}
    for line in lines:
        line = line.split("#")[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            out[re.sub(r"[-_.]+", "-", name).lower()] = version.strip()
    return out


def main() -> int:
    with open(sys.argv[1]) as f:
        pinned = pins(f.readlines())
    now = pins(sys.stdin.readlines())
    changed = sorted(n for n in pinned.keys() & now.keys() if pinned[n] != now[n])
    new, gone = sorted(now.keys() - pinned.keys()), sorted(pinned.keys() - now.keys())
    print(f"upgrade-check: {len(changed)} upgraded, {len(new)} new, {len(gone)} no longer "
          f"installed, compared with {sys.argv[1]}")
    for n in changed:
        print(f"  {n}: {pinned[n]} -> {now[n]}")
    for n in new:
        print(f"  {n}: new, {now[n]}")
    for n in gone:
        print(f"  {n}: {pinned[n]}, not installed now")
    return 0


if __name__ == "__main__":
    sys.exit(main())
