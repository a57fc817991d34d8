"""X's length rules against the official twitter-text conformance cases (config v3).

Every case of ``WeightedTweetsWithDiscountedEmojiCounterTest`` in the shared
``twitter-text-validate.yml`` must agree twice: ``x_weighted_length`` gives its ``weightedLength``,
and the adapter's queue-time check accepts exactly the texts that are ``valid``. The file lives in
``shared/conformance`` beside the clone (or in ``$CROSSPOST_CONFORMANCE_DIR``); a missing file fails
the run instead of skipping it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from adapters.base import Post
from adapters.x import XAdapter, x_weighted_length

GROUP = "WeightedTweetsWithDiscountedEmojiCounterTest"
FILE = Path(os.environ.get("CROSSPOST_CONFORMANCE_DIR")
            or Path(__file__).resolve().parents[3] / "shared" / "conformance") / "twitter-text-validate.yml"


MISSING = f"the twitter-text conformance file is missing: {FILE} (set CROSSPOST_CONFORMANCE_DIR)"


def _cases() -> list[Any]:
    if not FILE.is_file():
        return [pytest.param(MISSING, id="conformance-file-missing")]  # the test fails with it
    with FILE.open(encoding="utf-8") as f:
        cases = yaml.safe_load(f)["tests"][GROUP]
    return [pytest.param(case, id=case["description"]) for case in cases]


CASES = _cases()


def test_the_group_is_complete() -> None:
    # The group has 22 cases today; a missing, truncated or re-keyed file must not pass by testing nothing.
    if not FILE.is_file():
        pytest.fail(MISSING)
    assert len(CASES) >= 22


@pytest.mark.parametrize("case", CASES)
def test_weighted_length_and_validity(case: dict[str, Any] | str | None) -> None:
    if isinstance(case, str):
        pytest.fail(case)
    assert case is not None
    text, expected = case["text"], case["expected"]
    assert x_weighted_length(text) == expected["weightedLength"]
    problems = XAdapter().check(Post(text=text))
    assert (problems == []) == expected["valid"], [str(p) for p in problems]
