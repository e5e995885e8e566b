"""The images `make images` builds (scripts/build-images.sh), as the local node sees them.

`python -m agentfleet.dev.localenv.images import <containerd socket> <archive dir>` imports
every archive into containerd's Kubernetes namespace unless containerd already holds
that exact image (recorded next to its store by the image ID `make images` wrote).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

NAMESPACE = "k8s.io"


def _ctr(socket: Path, *args: str) -> str:
    result = subprocess.run(
        ["ctr", f"--address={socket}", f"--namespace={NAMESPACE}", *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"ctr {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def _import(socket: Path, archive: Path, attempts: int = 3) -> str:
    """`ctr images import`, again when containerd's garbage collection (set off by the
    image this one replaces) removed a parent snapshot under the unpack; the layers are in
    the content store by then, so the next attempt only unpacks."""
    for attempt in range(1, attempts + 1):
        try:
            return _ctr(socket, "images", "import", str(archive))
        except RuntimeError as exc:
            if attempt == attempts or "does not exist" not in str(exc):
                raise
    raise AssertionError("unreachable")


def import_archives(socket: Path, archives: Path) -> list[str]:
    """Import what changed; returns the archives imported."""
    records = socket.parent / "imported"
    records.mkdir(exist_ok=True)
    present = set(_ctr(socket, "images", "list", "--quiet").split())
    imported = []
    for archive in sorted(archives.glob("*.tar")):
        image_id = archive.with_suffix(".id").read_text().strip()
        record = records / f"{archive.stem}.id"
        ref = record.with_suffix(".ref")
        if (
            record.exists()
            and record.read_text().strip() == image_id
            and ref.exists()
            and ref.read_text().strip() in present
        ):
            continue
        out = _import(socket, archive)
        # "unpacking <ref> (sha256:...)...done"
        names = [line.split()[1] for line in out.splitlines() if line.startswith("unpacking ")]
        record.write_text(image_id + "\n")
        ref.write_text((names[0] if names else "") + "\n")
        imported.append(archive.name)
    return imported


def main(argv: list[str]) -> int:
    if len(argv) != 4 or argv[1] != "import":
        print("usage: python -m agentfleet.dev.localenv.images import <socket> <archives>")
        return 2
    for name in import_archives(Path(argv[2]), Path(argv[3])):
        print(f"imported {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
