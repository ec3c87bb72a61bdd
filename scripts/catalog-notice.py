"""Write src/patchwire/catalog/NOTICE from the catalog connectors' `catalog:` blocks
(tests/catalog/test_catalog_connectors.py fails when it is out of step).

Usage: .venv/bin/python scripts/catalog-notice.py
"""

from __future__ import annotations

from pathlib import Path

from patchwire.catalog import notice_text

TARGET = Path(__file__).resolve().parents[1] / "src" / "patchwire" / "catalog" / "NOTICE"

if __name__ == "__main__":
    TARGET.write_text(notice_text(), encoding="utf-8")
    print(f"wrote {TARGET}")
