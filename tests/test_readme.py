"""The README's results block is generated from the zoo's records (angio.study.readme)."""

import pytest

from angio.errors import InputError
from angio.study import readme


def test_readme_results_block_is_what_the_command_generates_now():
    current = readme.readme_block(readme.README.read_text(), readme.README)
    assert current == readme.results_block(), (
        f"README.md's results block is out of date with the zoo's records: run `{readme.COMMAND}`")


def test_the_block_is_found_and_replaced_between_its_markers(tmp_path):
    text = f"intro\n{readme.START}\nold\n{readme.END}\nrest\n"
    assert readme.replace_block(text, f"{readme.START}\nnew\n{readme.END}") == (
        f"intro\n{readme.START}\nnew\n{readme.END}\nrest\n")
    path = tmp_path / "README.md"
    path.write_text(text)
    assert readme.write_readme(path, check=True) and path.read_text() == text
    assert readme.write_readme(path) and not readme.write_readme(path)
    assert readme.readme_block(path.read_text()) == readme.results_block()
    with pytest.raises(InputError, match="expected one"):
        readme.readme_block("no markers here")
