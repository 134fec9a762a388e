#!/usr/bin/env python3
"""Fails when a file includes a header from a layer above its own (see ARCHITECTURE.md).

ir <- frontend <- models;  ir <- passes <- backends <- runtime <- tools
"""
import pathlib
import re
import sys

ALLOWED = {
    "ir": {"ir"},
    "frontend": {"ir", "frontend"},
    "models": {"ir", "frontend", "models"},
    "passes": {"ir", "passes"},
    "backends": {"ir", "passes", "backends"},
    "runtime": {"ir", "passes", "backends", "runtime"},
}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def main() -> int:
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    bad = []
    for layer, allowed in ALLOWED.items():
        for path in sorted((root / layer).rglob("*")):
            if path.suffix not in {".h", ".cpp", ".def"}:
                continue
            for inc in INCLUDE.findall(path.read_text(errors="replace")):
                top = inc.split("/", 1)[0]
                if "/" in inc and top in ALLOWED and top not in allowed:
                    bad.append(f"{path.relative_to(root)}: includes \"{inc}\" ({layer} may use {sorted(allowed)})")
    for line in bad:
        print(line)
    print(f"layering: {len(bad)} upward include(s)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
