"""pip-audit over the exact dependency set CI installed, reported honestly.

The installed set is frozen (``pip freeze``, alsys itself left out) into a lock file and audited
with ``--no-deps``. pip-audit prints "No known vulnerabilities found" even when it could not
reach the vulnerability data and skipped every package; this script counts what was really
audited and says UNAUDITED for the rest. Exit 1 when any vulnerability is found, else 0.

    .venv/bin/python scripts/audit.py [--lock FILE]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lock", help="keep the frozen dependency set here")
    args = parser.parse_args()
    bin_dir = Path(sys.executable).parent
    frozen = subprocess.run(
        [sys.executable, "-m", "pip", "freeze", "--exclude-editable"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    with tempfile.TemporaryDirectory() as scratch:
        lock = Path(args.lock) if args.lock else Path(scratch) / "requirements.lock"
        lock.write_text(frozen)
        report = Path(scratch) / "audit.json"
        argv = [str(bin_dir / "pip-audit"), "-r", str(lock), "--no-deps", "--disable-pip"]
        argv += ["--progress-spinner", "off", "-f", "json", "-o", str(report)]
        result = subprocess.run(
            argv,
            capture_output=True,
            text=True,
        )
        if not report.is_file():
            print(f"pip-audit: UNAUDITED: pip-audit failed (rc {result.returncode}):")
            print(result.stderr.strip()[-2000:])
            return 0
        dependencies = json.loads(report.read_text())["dependencies"]
    skipped = [d for d in dependencies if "skip_reason" in d]
    vulnerable = [d for d in dependencies if d.get("vulns")]
    audited = len(dependencies) - len(skipped)
    for dep in vulnerable:
        ids = ", ".join(v["id"] for v in dep["vulns"])
        print(f"pip-audit: VULNERABLE {dep['name']} {dep.get('version', '')}: {ids}")
    print(
        f"pip-audit: {len(dependencies)} locked packages; {audited} audited, "
        f"{len(vulnerable)} with known vulnerabilities; {len(skipped)} UNAUDITED"
    )
    if skipped:
        reason = skipped[0]["skip_reason"]
        print(
            f"pip-audit: UNAUDITED is not clean: the vulnerability data could not be reached for "
            f"{len(skipped)} packages (first: {reason})"
        )
    return 1 if vulnerable else 0


if __name__ == "__main__":
    sys.exit(main())
