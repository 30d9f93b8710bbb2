"""CONTRACT 6: a range exits with the worst code over its dates, worst first 1, 5, 2, 3, 4, 0."""

from __future__ import annotations

import pytest

from recon.cli import worst


@pytest.mark.parametrize("codes, expected", [
    ([3, 4], 3),  # refused input is worse than incomplete, though 4 > 3
    ([4, 3, 0], 3),
    ([2, 3, 4], 2),
    ([5, 2], 5),
    ([1, 5], 1),  # a bug is the worst, though 5 > 1
    ([0, 4, 0], 4),
    ([0, 0], 0),
    ([], 0),
], ids=["refused-over-incomplete", "refused-in-three", "usage-over-refused", "database-over-usage",
        "bug-over-database", "incomplete-over-done", "all-done", "no-dates"])
def test_worst_exit_code_of_a_range(codes, expected):
    assert worst(codes) == expected
