"""Write README.md from nbs/index.ipynb (nbdev-readme needs quarto, which this project does not use).

Markdown cells are copied verbatim; code cells become ```python blocks without their `#|` directives;
cells marked `#| hide` are left out. `python tools/make_readme.py --check` exits 1 when README.md is stale.
"""
import json, sys
from pathlib import Path

root = Path(__file__).resolve().parents[1]

def render(nb_path: Path) -> str:
    parts = []
    for c in json.loads(nb_path.read_text())["cells"]:
        src = "".join(c["source"]).strip("\n")
        lines = src.splitlines()
        directives = [l[3:].strip() for l in lines if l.startswith("#|")]
        if any(d.split()[0] in ("hide", "default_exp") for d in directives if d): continue
        body = "\n".join(l for l in lines if not l.startswith("#|")).strip("\n")
        if not body: continue
        parts.append(body if c["cell_type"] == "markdown" else f"```python\n{body}\n```")
    return "<!-- generated from nbs/index.ipynb by tools/make_readme.py: edit the notebook, not this file -->\n\n" + "\n\n".join(parts) + "\n"

if __name__ == "__main__":
    text, out = render(root/"nbs"/"index.ipynb"), root/"README.md"
    if "--check" in sys.argv:
        if not out.exists() or out.read_text() != text:
            sys.exit("README.md is stale: run `python tools/make_readme.py` and commit it")
    else: out.write_text(text)
