"""docs/testing.md cannot rot: its files (the code blocks with a ``title=``) are written
out as the small project they describe and its tests run with pytest, in a process of
their own, as a user would run them (the ``patchwire`` plugin comes from the installed
entry point)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).parents[2] / "docs" / "testing.md"
#: a fenced block naming its file: ```python title="tests/test_orders.py"
BLOCK = re.compile(r'^```\w+ title="(?P<path>[^"]+)"\n(?P<body>.*?)^```$',
                   re.MULTILINE | re.DOTALL)
#: bound on the doc's test run (it takes seconds)
RUN_TIMEOUT_S = 300


def doc_files() -> dict[str, str]:
    """Each titled file of the page; blocks with the same title are one file, in order."""
    files: dict[str, str] = {}
    for match in BLOCK.finditer(DOC.read_text()):
        path = match["path"]
        files[path] = files.get(path, "") + ("\n\n" if path in files else "") + match["body"]
    return files


def test_the_page_shows_the_connector_the_tests_and_a_recording() -> None:
    files = doc_files()

    assert {"connectors/orders.yaml", "tests/conftest.py", "tests/test_orders.py",
            "tests/recordings/orders.json", "pyproject.toml"} <= set(files)
    for piece in ("MockTransport", "Replay", "RecordingTransport", "sandbox()",
                  "fake_clock", "instant_retries"):
        assert piece in files["tests/test_orders.py"], piece


@pytest.mark.slow  # a pytest process of its own
def test_the_tests_the_page_shows_pass_as_written(tmp_path: Path) -> None:
    files = doc_files()
    for name, text in files.items():
        target = tmp_path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    expected = len(re.findall(r"^async def test_|^def test_", files["tests/test_orders.py"],
                              re.MULTILINE))

    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
         "tests"],
        cwd=tmp_path, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False)

    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{expected} passed" in done.stdout, done.stdout
