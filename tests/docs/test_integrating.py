"""docs/integrating.md works as printed: each of its Python examples runs and its asserts hold."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "integrating.md"


def examples() -> list[str]:
    """The ```python blocks of the guide, in order."""
    return re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


def test_the_guide_has_its_examples() -> None:
    """The flow example and the service example are both there."""
    blocks = examples()

    assert 2 <= len(blocks)
    assert "ConsentFlow(" in blocks[0]
    assert "build(settings, sink=sink)" in blocks[1]


@pytest.mark.parametrize("index", range(len(examples())))
async def test_example_runs_as_printed(index: int) -> None:
    """Each example runs in a fresh namespace (its asserts are the checks)."""
    code = examples()[index]
    namespace: dict[str, object] = {"__name__": f"integrating_example_{index}"}
    if "asyncio.run(main())" in code:
        # The guide calls asyncio.run(); inside the test's loop, await main() instead.
        source = code.replace("asyncio.run(main())", "")
        exec(compile(source, str(DOC), "exec"), namespace)  # noqa: S102 - our own docs
        await asyncio.wait_for(namespace["main"](), 60)  # type: ignore[operator]
    else:
        exec(compile(code, str(DOC), "exec"), namespace)  # noqa: S102 - our own docs
