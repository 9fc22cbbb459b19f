"""Rebuild audit_chain/anchoring/Anchor.json from contracts/Anchor.vy (offline, vyper 0.4.3).

Usage: python contracts/build_artifact.py [--check]
With --check, exit 1 when the committed artifact differs from a fresh compile.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from audit_chain.anchoring.contract import artifact_json, compile_artifact  # noqa: E402

SOURCE = ROOT / "contracts" / "Anchor.vy"
ARTIFACT = ROOT / "audit_chain" / "anchoring" / "Anchor.json"


def main(argv: list[str]) -> int:
    text = artifact_json(compile_artifact(SOURCE.read_text()))
    if "--check" in argv:
        if ARTIFACT.read_text() != text:
            print(f"{ARTIFACT} differs from a fresh compile of {SOURCE}", file=sys.stderr)
            return 1
        print("artifact matches the source")
        return 0
    ARTIFACT.write_text(text)
    print(f"wrote {ARTIFACT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
