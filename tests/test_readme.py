"""The README's code and commands stay true."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_example_runs():
    text = README.read_text()
    (code,) = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    namespace = {}
    exec(compile(code, str(README), "exec"), namespace)  # noqa: S102
    assert "Hispanic" in namespace["clf"].tasks_


def test_ci_runs_the_readme_test_command():
    text = README.read_text()
    commands = re.findall(r"^(pip install .*?)\s+#", text, flags=re.M)
    assert len(commands) == 2
    ci = (README.parent / ".ci" / "run").read_text()
    assert commands[1].strip() in ci
