""".env.example documents every variable the compose files read, with the compose defaults."""

from __future__ import annotations

import re

from ops.compose import COMPOSE_FILES as STACK_FILES
from ops.compose import REPO

#: Every compose file of every stack.
COMPOSE_FILES = sorted({name for files in STACK_FILES.values() for name in files})
#: ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?err} and bare $VAR; $$ is compose's escape.
READ = re.compile(r"(?<!\$)\$(?:\{(?P<braced>[A-Za-z_]\w*)(?P<op>:?[-?+])?(?P<default>[^}]*)\}|(?P<bare>[A-Za-z_]\w*))")
DOCUMENTED = re.compile(r"^#?\s*(?P<name>[A-Z_][A-Z0-9_]*)=(?P<value>.*)$")
#: Read by Compose itself (and by `python -m ops`), not interpolated in the files.
COMPOSE_OWN = {"COMPOSE_PROJECT_NAME", "COMPOSE_FILE"}
#: YAML comments are not interpolated (ours quote e.g. $HOME as an example value).
COMMENT = re.compile(r"(^|\s)#.*$", re.MULTILINE)


def compose_reads() -> dict[str, set[str]]:
    """Variable -> the defaults the compose files give it (empty set when none)."""
    reads: dict[str, set[str]] = {}
    for name in COMPOSE_FILES:
        for match in READ.finditer(COMMENT.sub("", (REPO / name).read_text())):
            variable = match["braced"] or match["bare"]
            defaults = reads.setdefault(variable, set())
            if match["op"] in {"-", ":-"}:
                defaults.add(match["default"])
    return reads


def documented() -> dict[str, str]:
    """Variable -> the value .env.example shows for it."""
    found = {}
    for line in (REPO / ".env.example").read_text().splitlines():
        if match := DOCUMENTED.match(line.strip()):
            found[match["name"]] = match["value"].strip()
    return found


def test_the_pattern_finds_every_kind_of_reference() -> None:
    text = "a: ${ONE:-x}\nb: ${TWO-y}\nc: ${THREE}\nd: $FOUR\ne: $${NOT_READ}  # like $IN_A_COMMENT\n# $NOR_THIS"
    found = [m["braced"] or m["bare"] for m in READ.finditer(COMMENT.sub("", text))]
    assert found == ["ONE", "TWO", "THREE", "FOUR"]


def test_every_variable_the_compose_files_read_is_documented() -> None:
    missing = sorted(set(compose_reads()) - set(documented()))
    assert not missing, f".env.example does not document {missing}; add a line with its default and meaning"


def test_documented_defaults_are_the_compose_defaults() -> None:
    docs = documented()
    wrong = {
        name: (docs[name], sorted(defaults))
        for name, defaults in compose_reads().items()
        if defaults and name in docs and docs[name] not in defaults  # missing ones: the test above
    }
    assert not wrong, f".env.example shows other defaults than the compose files (shown, compose): {wrong}"


def test_nothing_documented_is_stale() -> None:
    stale = sorted(set(documented()) - set(compose_reads()) - COMPOSE_OWN)
    assert not stale, f".env.example documents variables no compose file reads: {stale}"


def test_every_variable_has_a_one_line_meaning_above_it() -> None:
    lines = (REPO / ".env.example").read_text().splitlines()
    undescribed = [
        DOCUMENTED.match(line.strip())["name"]
        for index, line in enumerate(lines)
        if DOCUMENTED.match(line.strip())
        and not (lines[index - 1].startswith("# ") and not DOCUMENTED.match(lines[index - 1].strip()))
    ]
    assert not undescribed, f"no comment line right above: {undescribed}"


def test_assignments_are_commented_out_so_a_copy_changes_nothing() -> None:
    active = [
        line
        for line in (REPO / ".env.example").read_text().splitlines()
        if DOCUMENTED.match(line) and not line.startswith("#")
    ]
    assert not active, f"uncommented assignments would pin defaults in a copied .env: {active}"
