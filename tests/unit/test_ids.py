"""The integer-id and array helpers the pure modules share (recon.ids)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from recon.ids import encode_ids, latest_per_group
from tests.unit.test_classify import Day, _frame


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(-1, 4), st.integers(0, 3),
                          st.text(alphabet="ab9Z", min_size=1, max_size=3)),
                max_size=30))
def test_latest_per_group_is_the_greatest_time_then_the_greatest_id(rows):
    groups = np.array([group for group, _, _ in rows], dtype=np.int64)
    times = np.array([time for _, time, _ in rows], dtype=np.int64)
    ids = pd.Series([row_id for _, _, row_id in rows], dtype="str")
    best: dict[int, int] = {}
    for position, (group, time, row_id) in enumerate(rows):
        if group < 0:
            continue
        current = best.get(group)
        if current is None or (time, row_id) > (rows[current][1], rows[current][2]):
            best[group] = position
    # Equal (time, id) pairs in one group are the same row twice: either one is right.
    chosen = latest_per_group(groups, times, ids)
    assert list(chosen) == sorted(chosen)
    assert sorted(groups[chosen].tolist()) == sorted(best)
    for position in chosen:
        winner = best[int(groups[position])]
        assert (times[position], ids[position]) == (rows[winner][1], rows[winner][2])


def test_ids_encoded_on_two_threads_equal_those_encoded_on_one():
    day = (Day().installment("L1").installment("L2").binding("L2").binding("L9")
           .binding("L1").instruction("I1", loan="L1").instruction("I2", loan="L7")
           .settlement("I2").settlement("I5"))
    frames = {name: _frame(rows, list(rows[0])) for name, rows in
              [("installments", day.installments), ("instructions", day.instructions),
               ("bindings", day.bindings), ("settlements", day.settlements)]}
    alone = encode_ids(**frames)
    with ThreadPoolExecutor(1) as pool:
        beside = encode_ids(**frames, executor=pool)
    for field in ("loan_of_installment", "loan_of_instruction", "loan_of_binding",
                  "instruction_code", "settlement_instruction_code"):
        assert getattr(alone, field).tolist() == getattr(beside, field).tolist(), field
    # L9 has nothing due and no instruction on D: its binding is never consulted.
    assert alone.loan_of_binding.tolist() == [alone.loan_of_installment[1], -1,
                                              alone.loan_of_installment[0]]
    # I5 matches no instruction: its code is past the instructions' own.
    assert alone.settlement_instruction_code.tolist() == [1, 2]
    assert alone.instruction_ids == 3
