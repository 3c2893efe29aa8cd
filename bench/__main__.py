"""Run every benchmark module (or those named on the command line)."""

from __future__ import annotations

import importlib
import sys
import traceback
from pathlib import Path

from bench._report import render_doc, write_result


def main(argv: list[str]) -> int:
    here = Path(__file__).parent
    names = argv or sorted(p.stem for p in here.glob("*.py") if not p.stem.startswith("_"))
    failed = 0
    for name in names:
        module = importlib.import_module(f"bench.{name}")
        if not hasattr(module, "main"):
            continue
        print(f"== {name}", flush=True)
        try:
            result = module.main()
        except Exception:
            traceback.print_exc()
            failed += 1
            continue
        if isinstance(result, dict) and "rows" in result:
            write_result(name, result)
            for row in result["rows"]:
                print(f"  {row['metric']}: {row['value']} {row.get('unit', '')}")
    render_doc()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
