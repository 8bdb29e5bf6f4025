"""Cost of one ``format(date, pattern)`` formula call, per pattern (no stack needed).

    .venv/bin/python -m bench.date_formats

Prints microseconds per call, the best of five runs, for a few typical patterns and for a
datetime given as ISO text and as epoch milliseconds.
"""

from __future__ import annotations

import sys
import timeit
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from shared.personalization import compile_formula  # noqa: E402

PATTERNS = ["dd-MM-yyyy", "yyyy/MM/dd HH:mm", "EEEE, MMMM d", "hh:mm a", "'day' dd"]
VALUES: dict[str, Any] = {"iso": "2024-02-29T13:05:00+00:00", "millis": 1709251200000}
CALLS = 20_000


def per_call_us(pattern: str, value: Any) -> float:
    formula = compile_formula(f'format(d, "{pattern}")')
    values = {"d": value}
    best = min(timeit.repeat(lambda: formula.evaluate(values), number=CALLS, repeat=5))
    return best / CALLS * 1e6


def main() -> None:
    print(f"{'pattern':<20} " + " ".join(f"{kind:>10}" for kind in VALUES))
    for pattern in PATTERNS:
        costs = [per_call_us(pattern, value) for value in VALUES.values()]
        print(f"{pattern:<20} " + " ".join(f"{cost:>8.2f}us" for cost in costs))


if __name__ == "__main__":
    main()
