#!/usr/bin/env python3
"""The code-shape limits of docs/architecture.md, checked: no source file over 700 lines, no
function over 120 lines, no method-name string comparison outside the method registry, and
(with --untested) the public names of include/dne that no test names.

Usage: scripts/code_limits.py [--untested]   (from the repository root; plain Python 3, no packages)
Exit status 1 when a limit is broken; the --untested list is information, not a failure.

Function lengths are measured for definitions that start at column 0 and end at the next
line starting with "}" (every function of this code base is written so); lambdas and member
functions defined inside a class body count toward their enclosing definition.
"""
import glob
import os
import re
import sys

MAX_FILE_LINES = 700
MAX_FUNCTION_LINES = 120
METHODS = "none|random|whitebox|gezo|rge|spsa|nes|vae"
REGISTRY = {"src/config/methods.cpp", "src/experiment/method_registry.cpp"}


def sources():
    return sorted(glob.glob("src/**/*.cpp", recursive=True) + glob.glob("src/**/*.hpp", recursive=True) +
                  glob.glob("include/**/*.hpp", recursive=True))


def long_functions(path):
    lines = open(path, encoding="utf-8").read().split("\n")
    out, i = [], 0
    while i < len(lines):
        line = lines[i]
        head = "".join(lines[max(0, i - 3):i + 1])
        if (line and not line[0].isspace() and line.rstrip().endswith("{") and "(" in head
                and not line.startswith(("namespace", "struct", "class", "enum", "extern", "}", "#", "//"))
                and not re.match(r"^(static )?(const |constexpr )?[\w:<>, ]+ = ", line)):
            j = i + 1
            while j < len(lines) and not lines[j].startswith("}"):
                j += 1
            if j - i + 1 > MAX_FUNCTION_LINES:
                out.append((j - i + 1, i + 1, line.strip()[:90]))
            i = j
        i += 1
    return out


def main():
    broken = False
    for path in sources():
        n = len(open(path, encoding="utf-8").read().split("\n")) - 1
        if n > MAX_FILE_LINES:
            print(f"file over {MAX_FILE_LINES} lines: {path} ({n})")
            broken = True
        for length, line, text in long_functions(path):
            print(f"function over {MAX_FUNCTION_LINES} lines: {path}:{line} ({length}): {text}")
            broken = True
        if path not in REGISTRY:
            text = open(path, encoding="utf-8").read()
            for m in re.finditer(rf'method\w*\s*(==|!=)\s*"({METHODS})"|"({METHODS})"\s*(==|!=)\s*\w*method', text):
                print(f"method-name comparison outside the registry: {path}: {m.group(0)}")
                broken = True
    if "--untested" in sys.argv:
        tests = ""
        for f in glob.glob("tests/**/*", recursive=True):
            if os.path.isfile(f) and f.endswith((".cpp", ".hpp", ".py")):
                tests += open(f, encoding="utf-8", errors="ignore").read()
        names = set()
        for f in glob.glob("include/dne/**/*.hpp", recursive=True):
            s = open(f, encoding="utf-8").read()
            # A class's private part is not public: drop it (up to the next access label or "};").
            s = re.sub(r"^ *(private|protected):.*?(?=^ *public:|^};)", "", s, flags=re.M | re.S)
            for m in re.finditer(r"^(?:[\w:<>,\s\*&]+?)\s+\**&?(\w+)\((?:[^;{]*)\)\s*(?:const)?\s*;", s, re.M):
                names.add((f, m.group(1)))
            for m in re.finditer(r"^(?:class|struct)\s+(\w+)\s*(?:final)?\s*(?::|{)", s, re.M):
                names.add((f, m.group(1)))
        missing = sorted((f, n) for f, n in names if not re.search(r"\b" + re.escape(n) + r"\b", tests))
        print(f"# {len(missing)} of {len(names)} public names in include/dne are named in no test "
              "(many are exercised through the CLI's end-to-end tests):")
        for f, n in missing:
            print(f"  {f.replace('include/dne/', '')}: {n}")
    if not broken:
        print(f"ok: no file over {MAX_FILE_LINES} lines, no function over {MAX_FUNCTION_LINES}, "
              "no method-name comparison outside the registry")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
