"""The README's settings table is the list of settings: every one is there, and nothing else."""
import re
from pathlib import Path

from ispflow.config import documented_settings

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_settings() -> list[str]:
    section = README.read_text().split("## Configuration", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `(ISPFLOW_[A-Z_]+)` \|", section, flags=re.MULTILINE)


def test_the_readme_table_lists_every_setting_once():
    assert sorted(readme_settings()) == sorted(name for name, _, _ in documented_settings())


def test_every_setting_says_what_it_is_for():
    assert [name for name, _, doc in documented_settings() if not doc.strip()] == []
