"""docs/CONTRIBUTING.md's layout is the tree as it is: every module listed, nothing listed that is not there."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "glassbert"
SKIPPED = {"__init__.py", "__main__.py"}


def layout_entries() -> dict[str, str]:
    """The layout block's entries: a top-level name (``model.py``, ``tasks/``) → the text of its lines."""
    text = (ROOT / "docs" / "CONTRIBUTING.md").read_text(encoding="utf-8")
    block = re.search(r"## Layout\n.*?```text\n(.*?)```", text, re.S)
    assert block, "docs/CONTRIBUTING.md has no ```text block under '## Layout'"
    entries: dict[str, str] = {}
    current = None
    for line in block.group(1).splitlines():
        if not line.strip() or line.startswith("──"):
            continue
        if not line.startswith(" "):
            current = line.split()[0]
            assert current not in entries, f"{current} is listed twice"
            entries[current] = line
        else:
            assert current is not None, line
            entries[current] += "\n" + line
    return entries


def test_every_top_level_module_and_package_is_listed_once_and_nothing_else():
    entries = layout_entries()
    modules = {p.name for p in PACKAGE.glob("*.py") if p.name not in SKIPPED}
    packages = {f"{p.name}/" for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    listed = set(entries)
    assert listed - (modules | packages) == set(), "listed in CONTRIBUTING but not in src/glassbert"
    assert (modules | packages) - listed == set(), "in src/glassbert but missing from CONTRIBUTING's layout"


def test_each_package_entry_names_its_modules_and_only_those():
    for name, text in layout_entries().items():
        if not name.endswith("/"):
            continue
        package = PACKAGE / name.rstrip("/")
        modules = {p.name for p in package.glob("*.py") if p.name not in SKIPPED}
        named = set(re.findall(r"\b(\w+\.py)\b", text))
        assert modules - named == set(), f"{name}: modules not named in its entry"
        assert named - modules == set(), f"{name}: names modules it does not have"


def test_the_explorer_page_files_are_named():
    text = layout_entries()["explorer/"]
    static = PACKAGE / "explorer" / "static"
    for script in static.glob("*.js"):
        assert script.name in text, script.name
    assert "views/*.js" in text and any((static / "views").glob("*.js"))
