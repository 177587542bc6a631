"""The lint shape cache against the full pkilint lint, on many generated certificates.

The same comparison as tests/unit/test_lint_shape.py (strategies in tests/lint_cases.py), run
for `--examples` certificates: every answer of the cached path must equal the full lint's.
Prints how many were compared, refused, answered from the cache, and the CPU per certificate
of each path.

    .venv/bin/python bench/lint_cache.py --examples 20000
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

from hypothesis import HealthCheck, given, seed, settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from certforge.issuer import lint
from lint_cases import certificates  # type: ignore[import-not-found]  # tests/ is no package


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=17)
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # cryptography's warnings about over-long names
    cache = lint.LintCache()
    counts = {"compared": 0, "refused": 0, "disagreed": 0}
    seconds = {"full": 0.0, "cached": 0.0}

    @settings(
        max_examples=args.examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(certificates())
    def compare(cert: object) -> None:
        started = time.process_time()
        full = lint.lint_errors(cert)  # type: ignore[arg-type]
        middle = time.process_time()
        cached = cache.errors(cert)  # type: ignore[arg-type]
        seconds["full"] += middle - started
        seconds["cached"] += time.process_time() - middle
        counts["compared"] += 1
        counts["refused"] += bool(full)
        if cached != full:
            counts["disagreed"] += 1
            print("DISAGREE", full, cached, file=sys.stderr)

    seed(args.seed)(compare)()
    n = max(counts["compared"], 1)
    print(
        json.dumps(
            {
                **counts,
                "cache_hits": cache.hits,
                "cache_misses": cache.misses,
                "full_ms_per_cert": round(seconds["full"] / n * 1000, 3),
                "cached_ms_per_cert": round(seconds["cached"] / n * 1000, 3),
            }
        )
    )
    sys.exit(1 if counts["disagreed"] else 0)


if __name__ == "__main__":
    main()
