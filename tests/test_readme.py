"""The README's "Use it like PyTorch" snippet runs as printed (on whatever devices this machine has)."""
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_use_it_like_pytorch_snippet_runs():
    text = README.read_text()
    section = text[text.index("## Use it like PyTorch"):]
    snippet = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    out = subprocess.run([sys.executable, "-c", snippet], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert float(out.stdout.strip().splitlines()[-1]) > 0  # the printed loss
