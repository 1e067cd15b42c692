"""Round trips to PostgreSQL per ``POST /api/v1/readings``, and the statements themselves.

A figure that, unlike throughput, does not depend on what else the machine is doing: it counts
every statement the app sends (and the commits and savepoints) for one request that records a
referring reading for a new woman, the same request ``bench_ingest.py`` sends.

    python bench/round_trips.py [--show]
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import traceback
from collections import Counter
from pathlib import Path
from typing import Any

from sqlalchemy import event

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common
from bench_ingest import body


def _caller() -> str:
    """The innermost frame of the project's own code that sent the statement."""
    for frame in reversed(traceback.extract_stack()):
        if (
            "site-packages" not in frame.filename
            and "/bench/" not in frame.filename[len(str(common.ROOT)) :]
        ):
            if not frame.filename.startswith(str(common.ROOT)):
                continue
            where = Path(frame.filename).relative_to(common.ROOT)
            return f"{where}:{frame.lineno} {frame.name}"
    return "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--show", action="store_true", help="print each statement")
    parser.add_argument("--requests", type=int, default=5)
    args = parser.parse_args()
    from fastapi.testclient import TestClient

    from app.config import Settings
    from app.main import create_app

    with common.throwaway_database() as url:
        world = common.seed(url)
        app = create_app(Settings(database_url=url, log_level="WARNING"))
        statements: list[str] = []

        def count(*_args: Any, **kw: Any) -> None:
            statements.append(f"{str(_args[2]).split(chr(10))[0][:90]}  <- {_caller()}")
            if "organisation.id =" in str(_args[2]) or "referral.id =" in str(_args[2]):
                statements[-1] += f" {_args[3]} {str(_args[2])[-200:]}"

        event.listen(app.state.engine, "before_cursor_execute", count)
        event.listen(app.state.engine, "commit", lambda *_: statements.append("COMMIT"))
        numbers = common.synthetic_nhs_numbers(7_000_000)
        per_request = []
        with TestClient(app) as client:
            headers = {"Authorization": f"Bearer {world.api_key}"}
            for n in range(args.requests + 1):
                statements.clear()
                now = dt.datetime.now(dt.UTC)
                answer = client.post(
                    "/api/v1/readings", json=body(next(numbers), now), headers=headers
                )
                assert answer.status_code == 201, answer.text
                if n:  # the first request also fills caches: not counted
                    per_request.append(len(statements))
        if args.show:
            for line in statements:
                print(f"  {line}")
        kinds = Counter(s.split()[0] for s in statements)
        print(
            f"round trips per reading (new woman, referral): {max(per_request)} "
            f"({', '.join(f'{k} {v}' for k, v in kinds.most_common())})"
        )


if __name__ == "__main__":
    main()
