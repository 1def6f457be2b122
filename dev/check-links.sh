#!/usr/bin/env bash
# Checks the docs (README.md, BENCHMARKS.md, docs/*.md): every relative link resolves to a file or
# directory of the repository, every #anchor to a heading of the page it names, and every repository path
# written in backticks (`dev/test.sh`, `shared/store/src/jobs.rs`, ...) exists.
# Usage: dev/check-links.sh [files...]   Exit 1 if anything is broken.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
if (($# == 0)); then set -- README.md BENCHMARKS.md docs/*.md; fi

python3 - "$@" <<'PY'
import os, re, sys

# Top-level entries a path in backticks may start with; anything else in backticks is not a path.
ROOTS = {e for e in os.listdir(".") if not e.startswith(".") and e != "target"} | {".ci"}
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
CODE = re.compile(r"`([^`\n]+)`")
FENCE = re.compile(r"^```")


def slug(heading):
    """GitHub's anchor for a heading."""
    text = re.sub(r"`|\*|_(?=\w)|(?<=\w)_", "", heading.strip().lower())
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path):
    found, seen, fenced = set(), {}, False
    with open(path, encoding="utf-8") as f:
        for line in f:
            if FENCE.match(line):
                fenced = not fenced
            if fenced:
                continue
            m = re.match(r"^(#{1,6})\s+(.*?)\s*#*\s*$", line)
            if m:
                s = slug(m.group(2))
                n = seen.get(s, 0)
                seen[s] = n + 1
                found.add(s if n == 0 else f"{s}-{n}")
    return found


def check(page):
    problems = []
    base = os.path.dirname(page)
    fenced = False
    with open(page, encoding="utf-8") as f:
        lines = f.readlines()
    for no, line in enumerate(lines, 1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if fenced:
            continue
        for target in LINK.findall(line):
            if re.match(r"^[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            resolved = os.path.normpath(os.path.join(base, path)) if path else page
            if not os.path.exists(resolved):
                problems.append(f"{page}:{no}: link to a missing file: {target}")
                continue
            if anchor and resolved.endswith(".md") and anchor not in anchors(resolved):
                problems.append(f"{page}:{no}: no heading #{anchor} in {resolved}")
        for code in CODE.findall(line):
            for word in code.split():
                word = word.rstrip(".,;:)")
                first = word.split("/")[0]
                if first not in ROOTS or ("/" not in word and not os.path.isfile(first)):
                    continue
                if re.search(r"[<>{}*$\[\]=|]|\.\.\.", word):
                    continue
                if not os.path.exists(word):
                    problems.append(f"{page}:{no}: path in backticks does not exist: {word}")
    return problems


problems = [p for page in sys.argv[1:] for p in check(page)]
for p in problems:
    print(p)
print(f"check-links: {len(sys.argv) - 1} pages, {len(problems)} broken")
sys.exit(1 if problems else 0)
PY
