"""Log lines and progress bars (recon.logs): formats, levels per terminal, drawing above a bar."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import re

import pytest

from recon import logs

CONTEXT = {"run_id": "3f2a9c01d4e5f6a7", "business_date": "2026-11-27"}


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def quiet_logging_afterwards():
    yield
    logs.configure(logs.LogOptions(), stream=io.StringIO())


def log_to(stream, **options) -> logging.Logger:
    logs.configure(logs.LogOptions(**options), stream=stream)
    return logging.getLogger("recon")


def test_json_lines_parse_with_time_level_run_id_business_date_and_message():
    stream = io.StringIO()
    log = log_to(stream, format="json", verbose=True)
    log.info("load done in %.2fs", 0.5, extra={**CONTEXT, "step": "load", "seconds": 0.5})
    log.warning("no context here")
    first, second = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert first["level"] == "INFO" and first["message"] == "load done in 0.50s"
    assert (first["run_id"], first["business_date"]) == (CONTEXT["run_id"], "2026-11-27")
    assert (first["step"], first["seconds"]) == ("load", 0.5)
    assert dt.datetime.fromisoformat(first["ts"]).utcoffset() is not None
    assert (second["run_id"], second["business_date"]) == (None, None)


def test_a_json_traceback_stays_on_one_line():
    stream = io.StringIO()
    log = log_to(stream, format="json")
    try:
        raise RuntimeError("boom\nsecond line")
    except RuntimeError:
        log.exception("internal error", extra=CONTEXT)
    [line] = stream.getvalue().splitlines()
    entry = json.loads(line)
    assert "RuntimeError: boom" in entry["exc"] and entry["level"] == "ERROR"


def test_text_lines_name_the_business_date_and_run():
    stream = io.StringIO()
    log_to(stream, verbose=True).info("classify done in 0.07s", extra=CONTEXT)
    line = stream.getvalue().strip()
    assert line.endswith("INFO  [2026-11-27 run 3f2a9c01d4e5f6a7] classify done in 0.07s")


def test_text_lines_carry_their_time_with_its_utc_offset():
    stream = io.StringIO()
    log_to(stream, verbose=True).info("step", extra=CONTEXT)
    when = dt.datetime.fromisoformat(stream.getvalue().split(" INFO ", 1)[0])
    assert when.utcoffset() is not None
    assert abs(when - dt.datetime.now(dt.timezone.utc)) < dt.timedelta(minutes=5)


def test_json_lines_keep_chinese_readable_and_hold_the_step_fields():
    stream = io.StringIO()
    log_to(stream, format="json", verbose=True).info(
        "回盘文件未到", extra={**CONTEXT, "step": "load", "seconds": 1.25})
    line = stream.getvalue().strip()
    assert "回盘文件未到" in line
    entry = json.loads(line)
    assert {"ts", "level", "run_id", "business_date", "message", "logger", "pid", "step",
            "seconds"} <= set(entry)


def test_card_numbers_are_masked_in_log_lines():
    stream = io.StringIO()
    log_to(stream, format="json").error("bad value 6222020200112233446 in line 4")
    assert "6222020200112233446" not in stream.getvalue()
    assert "622202*********3446" in stream.getvalue()


def test_off_a_terminal_only_warnings_and_errors_reach_stderr():
    stream = io.StringIO()
    log = log_to(stream)
    log.info("step", extra=CONTEXT)
    log.error("broken", extra=CONTEXT)
    assert [line.split("] ", 1)[1] for line in stream.getvalue().splitlines()] == ["broken"]


@pytest.mark.parametrize("stream, options", [(Terminal(), {}), (io.StringIO(), {"verbose": True})],
                         ids=["terminal", "verbose"])
def test_on_a_terminal_or_with_verbose_every_step_reaches_stderr(stream, options):
    log_to(stream, **options).info("step", extra=CONTEXT)
    assert "step" in stream.getvalue()


def test_the_log_file_gets_every_step_whatever_the_terminal(tmp_path):
    path = tmp_path / "logs" / "recon.log"
    stream = io.StringIO()
    log_to(stream, format="json", file=path).info("step", extra=CONTEXT)
    logs.configure(logs.LogOptions(), stream=io.StringIO())  # closes the file
    assert stream.getvalue() == ""
    assert json.loads(path.read_text(encoding="utf-8"))["message"] == "step"


def test_an_unknown_format_is_refused():
    with pytest.raises(ValueError):
        logs.formatter("xml")


# --- progress ---------------------------------------------------------------------------------

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def screen(terminal: Terminal) -> str:
    """What the terminal was sent, without colours and cursor moves."""
    return ANSI.sub("", terminal.getvalue())


def test_no_bar_is_drawn_off_a_terminal():
    stream = io.StringIO()
    log_to(stream)
    with logs.progress("dates", 3) as bar:
        bar.advance(1, "2026-11-27")
    assert stream.getvalue() == ""


def test_a_bar_is_drawn_on_a_terminal_and_cleared_at_the_end():
    terminal = Terminal()
    log_to(terminal)
    with logs.progress("dates", 4) as bar:
        bar.advance(1, "2026-11-27 done")
        assert re.search(r"dates \S+ +25% 1/4 .*2026-11-27 done", screen(terminal))
    # The display is transient: its last act is to erase itself and show the cursor again.
    assert terminal.getvalue().rstrip("\r").endswith("\x1b[2K\x1b[?25h")


def test_a_bar_that_is_not_shown_draws_nothing_even_on_a_terminal():
    terminal = Terminal()
    log_to(terminal)
    with logs.progress("dates", 1, shown=False) as bar:
        bar.advance(1)
    assert terminal.getvalue() == ""


def test_workers_draw_no_bars():
    terminal = Terminal()
    log_to(terminal, progress=False)
    with logs.progress("dates", 2) as bar:
        bar.advance(1)
    assert terminal.getvalue() == ""


def test_a_log_line_is_written_above_the_bar_which_is_then_redrawn():
    terminal = Terminal()
    log = log_to(terminal)
    with logs.progress("dates", 2) as bar:
        bar.advance(1)
        before = len(screen(terminal))
        log.info("load done", extra=CONTEXT)
        written = screen(terminal)[before:]
    line, redrawn = written.lstrip("\r").split("\n", 1)
    assert line.endswith("] load done")
    assert redrawn.startswith("dates ")  # the bar again, below the line


def test_nested_bars_draw_the_inner_one_below_the_outer_then_drop_it():
    terminal = Terminal()
    log_to(terminal)

    def last_frame() -> list[str]:
        return [line.split(" ", 1)[0] for line in screen(terminal).rsplit("\r", 1)[1].split("\n")]

    with logs.progress("dates", 2):
        with logs.progress("inner", 0):
            assert last_frame() == ["dates", "inner"]
        assert last_frame() == ["dates"]


def test_loading_a_large_folder_shows_its_size_and_elapsed_time(tmp_path, monkeypatch):
    (tmp_path / "installments.csv").write_bytes(b"x" * 3000)
    monkeypatch.setattr(logs, "LOADING_DISPLAY_MIN_BYTES", 2048)
    terminal = Terminal()
    log_to(terminal)
    with logs.loading(tmp_path, "2026-11-27 loading", tick_seconds=0.01):
        pass
    assert re.search(r"2026-11-27 loading 2\.9 KB .* 0:00:00", screen(terminal)), screen(terminal)


def test_loading_a_small_folder_shows_nothing(tmp_path):
    (tmp_path / "installments.csv").write_bytes(b"x" * 3000)
    terminal = Terminal()
    log_to(terminal)
    with logs.loading(tmp_path, "2026-11-27 loading"):
        pass
    assert terminal.getvalue() == ""
