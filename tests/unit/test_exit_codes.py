"""CONTRACT 6: a range exits with the worst code over its dates, worst first 1, 143, 130, 5, 2, 3, 4, 0."""

from __future__ import annotations

import pytest

from recon.ranges import worst


@pytest.mark.parametrize("codes, expected", [
    ([3, 4], 3),  # refused input is worse than incomplete, though 4 > 3
    ([4, 3, 0], 3),
    ([2, 3, 4], 2),
    ([5, 2], 5),
    ([1, 5], 1),  # a bug is the worst, though 5 > 1
    ([0, 4, 0], 4),
    ([0, 0], 0),
    ([], 0),
    ([5, 130, 0], 130),  # a worker stopped by a signal: that date was not done
    ([130, 143], 143),
    ([143, 1], 1),
], ids=["refused-over-incomplete", "refused-in-three", "usage-over-refused", "database-over-usage",
        "bug-over-database", "incomplete-over-done", "all-done", "no-dates",
        "interrupted-over-database", "terminated-over-interrupted", "bug-over-terminated"])
def test_worst_exit_code_of_a_range(codes, expected):
    assert worst(codes) == expected
