"The README's commands are the ones CI runs, and the generated files are in sync with the notebooks."
import re, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

def ci_commands() -> dict:
    text = (ROOT/".ci"/"run").read_text()
    return {k: re.search(rf"^{k}='(.*)'$", text, re.M).group(1) for k in ("INSTALL", "TEST")}

def test_readme_shows_the_ci_commands():
    readme = (ROOT/"README.md").read_text()
    for name, cmd in ci_commands().items():
        assert f"\n{cmd}\n" in readme, f"README.md does not show the {name} command that .ci/run runs: {cmd}"

def test_readme_is_generated_from_index():
    r = subprocess.run([sys.executable, str(ROOT/"tools"/"make_readme.py"), "--check"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr

def test_config_imports_from_the_installed_package():
    r = subprocess.run([sys.executable, "-c", "from sae_nb.config import SAEConfig, TrainingConfig; print(SAEConfig(d_in=8, d_sae=32, top_k=2, device='cpu').top_k_aux)"],
                       capture_output=True, text=True, cwd="/")
    assert r.returncode == 0 and r.stdout.strip() == "1", r.stderr
