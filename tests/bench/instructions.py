"""Instructions a decode worker executes per SDK run and per OTLP span, counted by valgrind's callgrind.

On this shared host the same code's CPU per run swung by half within minutes, so timings needed many alternated
runs to show a change of a few percent; an instruction count does not move between runs (±0.5%). It misses what
instructions do not show (cache misses, syscalls, ClickHouse), so it complements the end-to-end benchmarks. Each
figure is the count of a loop over the bodies, minus that of the same process without the loop (imports and
set-up). The SDK loop is `ingest.workers.multipart_record` over tests/bench/ingest.py's bodies; the OTLP loop is
`ingest.otlp.worker.decode_spans` over tests/bench/otlp.py's bodies (gzip, as it sends them), pickling what it
returns (as a decode worker sends it back). Needs valgrind
(`apt-get install valgrind`); ~3 minutes.

    .venv/bin/python -m tests.bench.instructions
"""

from __future__ import annotations

import argparse
import gzip
import pickle
import random
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

BODIES = 10  # requests of 100 runs or spans each
REPEATS = 2


def _loop(kind: str, bodies_path: Path, repeats: int) -> None:
    from ingest.otlp import Encoding
    from ingest.otlp.worker import decode_spans
    from ingest.workers import multipart_record
    from tracehouse.tuning import tune_process

    bodies, boundary = pickle.loads(bodies_path.read_bytes())
    tune_process()  # as the workers run
    tenant = uuid.UUID(int=1)
    for _ in range(repeats):
        for body in bodies:
            if kind == "sdk":
                multipart_record(body, "zstd", boundary, tenant, 1 << 30)
            else:
                spans = decode_spans(body, "gzip", Encoding.PROTOBUF, None, 1 << 30)
                pickle.dumps(spans, protocol=pickle.HIGHEST_PROTOCOL)


def _count(kind: str, bodies_path: Path, repeats: int) -> int:
    command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable]
    command += ["-m", "tests.bench.instructions", "--loop", kind, str(bodies_path), str(repeats)]
    found = re.search(r"Collected : (\d+)", subprocess.run(command, capture_output=True, text=True, check=True).stderr)
    if found is None:
        raise RuntimeError(f"callgrind printed no count for {kind}")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--loop", nargs=3, metavar=("KIND", "BODIES", "REPEATS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.loop:
        _loop(args.loop[0], Path(args.loop[1]), int(args.loop[2]))
        return
    if shutil.which("valgrind") is None:
        sys.exit("needs valgrind (apt-get install valgrind)")
    from tests.bench import ingest as bench_ingest
    from tests.bench.otlp import otlp_body

    random.seed(7)
    made = {
        "sdk": ([bench_ingest.sdk_body()[0] for _ in range(BODIES)], bench_ingest.BOUNDARY),
        "otlp": ([gzip.compress(otlp_body(), 6) for _ in range(BODIES)], ""),
    }
    with tempfile.TemporaryDirectory() as tmp:
        for kind, bodies in made.items():
            path = Path(tmp) / f"{kind}.pickle"
            path.write_bytes(pickle.dumps(bodies))
            loop = _count(kind, path, REPEATS) - _count(kind, path, 0)
            unit = "SDK run" if kind == "sdk" else "OTLP span"
            print(f"{loop / (REPEATS * BODIES * 100):,.0f} instructions per {unit} in a decode worker")


if __name__ == "__main__":
    main()
