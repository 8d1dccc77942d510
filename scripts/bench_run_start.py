"""What an ablation run pays before its fit starts: a fresh interpreter (`python -m wavalign ...`, as runs started
before ablate/launcher.py) against a fork of the preloaded server, alternating, on a command that only parses the
run's configs (`fit --config ... --print_config`).

    python scripts/bench_run_start.py [--config configs/tiny.yaml] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from wavalign.ablate import launcher
from wavalign.ablate.runner import run_and_record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/tiny.yaml")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    command = ["fit", "--config", args.config, "--print_config"]
    fresh, forked = [], []
    with tempfile.TemporaryDirectory() as tmp:
        launcher.start(
            run_and_record, command, Path(tmp) / "warm" / "seed0", {}, 1
        ).wait()  # the server's one-time start
        for i in range(args.repeats):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "wavalign", *command], capture_output=True, check=True)
            fresh.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            launcher.start(run_and_record, command, Path(tmp) / "r" / f"seed{i}", {}, 1).wait()
            forked.append(time.perf_counter() - t0)
    f, k = statistics.median(fresh), statistics.median(forked)
    print(f"fresh interpreter: median {f:.2f} s {[round(x, 2) for x in fresh]}")
    print(f"forked from the preloaded server: median {k:.2f} s {[round(x, 2) for x in forked]}")
    print(f"saved per run: {f - k:.2f} s ({k / f:.2f} of the fresh start)")


if __name__ == "__main__":
    main()
