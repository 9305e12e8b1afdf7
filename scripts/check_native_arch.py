"""Check that every native file (ELF: shared objects, executables) under a build dir is for one architecture.

    python scripts/check_native_arch.py BUILD_DIR x86_64|arm64

Reads each file's ELF header (e_machine, the 2 bytes at offset 18, in the byte order e_ident[EI_DATA]
names), so `file` need not be installed; every file is looked at, not only *.so (onnxruntime ships
libonnxruntime.so.1.x). Prints the count per architecture and exits 1 naming the files built for another
one. Standard library only: scripts/sam-build.sh runs it with the build's python3.12.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from pathlib import Path

ELF_MAGIC = b"\x7fELF"
MACHINES = {62: "x86_64", 183: "arm64", 3: "x86 (32-bit)", 40: "arm (32-bit)"}  # EM_X86_64, EM_AARCH64, ...


def elf_machine(path: Path) -> str | None:
    """The architecture an ELF file is built for ("x86_64", "arm64", "e_machine N"), None if not ELF."""
    try:
        with path.open("rb") as fh:
            header = fh.read(20)
    except OSError:
        return None
    if len(header) < 20 or header[:4] != ELF_MAGIC:
        return None
    byteorder = "little" if header[5] == 1 else "big"
    machine = int.from_bytes(header[18:20], byteorder)
    return MACHINES.get(machine, f"e_machine {machine}")


def native_files(root: Path) -> dict[Path, str]:
    """Every ELF file under root (symlinks not followed) -> its architecture."""
    found: dict[Path, str] = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = Path(dirpath) / name
            if path.is_symlink():
                continue
            machine = elf_machine(path)
            if machine is not None:
                found[path] = machine
    return found


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[1] not in ("x86_64", "arm64"):
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    root, expected = Path(argv[0]), argv[1]
    found = native_files(root)
    counts = Counter(found.values())
    wrong = sorted(str(p.relative_to(root)) for p, m in found.items() if m != expected)
    print(f"native files in {root}: " + (", ".join(f"{n} {m}" for m, n in sorted(counts.items())) or "none"))
    if not found:
        print(f"FAIL: no native file at all in {root}: not a build of the layers", file=sys.stderr)
        return 1
    if wrong:
        print(f"FAIL: {len(wrong)} native files are not {expected}:", *wrong[:20], sep="\n  ", file=sys.stderr)
        return 1
    print(f"OK: every native file is {expected}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
