"""Every file in fixtures/bad/ (scripts/make_bad_fixtures.py): what is reported on stderr, what
is still counted, and the exit code, with and without --strict. Then output safety."""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import subprocess

import pytest

from sessions_cli.read import sources as inputs
from sessions_cli.store import loading
from sessions_cli.tuning import Tuning
from tests.conftest import FIXTURES, SESSIONS, run
from tests.otlp_builder import document, lines, span

BAD = FIXTURES / "bad"
W = "sessions: warning: "
# The two good one-span sessions most files keep around their flaw: sess-ok, 2 spans, 200 in.
OK = {"sess-ok": (2, 200)}


def unpriced(calls: int) -> str:
    """The note for LLM calls that carry tokens but neither a model nor a cost."""
    verb = "has" if calls == 1 else "have"
    return (f"{W}{calls:,} LLM call{'s' if calls > 1 else ''} {verb} tokens but no price, so "
            f"{'its' if calls == 1 else 'their'} cost is unknown (a cost shows ? or a lower bound "
            f"≥$): (no model named) ({calls:,}); a call that names no model can only be priced by "
            "a cost attribute")  # fmt: skip


def listed(path, *args):
    """(exit code, {session: (spans, input tokens)}, stderr lines) of `list --json`."""
    result = run("list", str(path), "--json", *args)
    rows = json.loads(result.stdout) if result.stdout else []
    found = {r["session_id"]: (r["span_count"], r["input_tokens"]) for r in rows}
    return result.exit_code, found, result.stderr.splitlines()


def strict(path):
    result = run("list", str(path), "--json", "--strict")
    return result.exit_code, result.stdout, result.stderr


# (file, sessions still counted, warnings, fails under --strict)
CASES = [
    ("truncated_last_line.otlp.jsonl", OK,
     [f"{W}{BAD}/truncated_last_line.otlp.jsonl: skipped 1 malformed line (line 3; first: "
      "invalid JSON: the line ends early (truncated?))"], True),
    ("cut_multibyte_character.otlp.jsonl", OK,
     [f"{W}{BAD}/cut_multibyte_character.otlp.jsonl: skipped 1 malformed line (line 3; first: "
      "invalid JSON: the line ends early (truncated?))",
      f"{W}{BAD}/cut_multibyte_character.otlp.jsonl: invalid UTF-8 replaced with U+FFFD"], True),
    ("invalid_utf8.otlp.jsonl", {**OK, "sess-\ufffd\ufffdok": (1, 100)},
     [f"{W}{BAD}/invalid_utf8.otlp.jsonl: invalid UTF-8 replaced with U+FFFD"], True),
    ("utf8_bom.otlp.jsonl", OK, [], False),
    ("crlf_line_endings.otlp.jsonl", OK, [], False),
    ("empty_gzip.otlp.jsonl.gz", {},
     ["sessions: no spans found in the input", "sessions: no sessions match"], False),
    ("not_an_object.otlp.jsonl", OK,
     [f"{W}{BAD}/not_an_object.otlp.jsonl: skipped 4 malformed lines (line 3, 4, 5, 6; first: "
      "expected an OTLP object, found a number)"], True),
    ("resource_spans_wrong_type.otlp.jsonl", OK,
     [f"{W}{BAD}/resource_spans_wrong_type.otlp.jsonl: skipped 2 malformed lines (line 3, 4; "
      "first: resourceSpans is an object, not an array)"], True),
    ("span_missing_ids_or_times.otlp.jsonl", {**OK, "sess-raw": (1, 7)},
     [f"{W}{BAD}/span_missing_ids_or_times.otlp.jsonl: 1 span without valid start and end times "
      "(missing, 0, negative or past year 9999) has no times",
      f"{W}skipped 2 spans without a valid traceId/spanId",
      unpriced(1)], True),
    ("invalid_ids.otlp.jsonl", OK,
     [f"{W}skipped 4 spans without a valid traceId/spanId"], True),
    ("end_before_start.otlp.jsonl", {**OK, "sess-raw": (1, 7)},
     [f"{W}{BAD}/end_before_start.otlp.jsonl: 1 span ends before it starts: its end is taken as "
      "its start", unpriced(1)], False),
    ("bad_timestamps.otlp.jsonl", {**OK, "sess-raw": (3, 21)},
     [f"{W}{BAD}/bad_timestamps.otlp.jsonl: 3 spans without valid start and end times (missing, "
      "0, negative or past year 9999) have no times", unpriced(3)], True),
    # "12" and "12.0" count; NaN, Infinity, beyond 64 bits and 12.5 do not.
    ("odd_numbers.otlp.jsonl", {**OK, "sess-numbers": (6, 24)},
     [f"{W}{BAD}/odd_numbers.otlp.jsonl: 4 token counts or costs that are not non-negative "
      "numbers (tokens whole) were ignored", unpriced(2)], True),
    ("negative_usage.otlp.jsonl", {**OK, "sess-negative": (1, 0)},
     [f"{W}{BAD}/negative_usage.otlp.jsonl: 2 token counts or costs that are not non-negative "
      "numbers (tokens whole) were ignored", unpriced(1)], True),
    ("nested_values_for_text.otlp.jsonl", {**OK, "sess-nested": (2, 0)},
     [f"{W}{BAD}/nested_values_for_text.otlp.jsonl: 3 attribute values that are arrays or "
      "key-value lists where text was expected were ignored"], True),
    ("session_id_is_an_int.otlp.jsonl", {**OK, "42": (1, 0)}, [], False),
    ("two_session_ids_in_one_trace.otlp.jsonl", {**OK, "sess-root": (4, 0)},
     [f"{W}2 traces carry more than one session id: each belongs to its root's session"], False),
    # a (30 tokens) and b (20) name each other: cut at a, b is a's child and counts; a is its
    # wrapper. The self-parented span (5) is a root.
    ("parent_cycle.otlp.jsonl", {**OK, "sess-cycle": (3, 25)},
     [f"{W}1 span names itself as parent: taken as a root",
      f"{W}1 parent cycle (a -> b -> a): the earliest span of each is taken as a root",
      unpriced(2)], False),
    # `zcat` recovers 46 whole lines of it: so do we, and the 47th is cut
    ("truncated_gzip.otlp.jsonl.gz", OK,
     [f"{W}{BAD}/truncated_gzip.otlp.jsonl.gz: skipped 1 malformed line (line 47; first: invalid "
      "JSON: the line ends early (truncated?))",
      f"{W}{BAD}/truncated_gzip.otlp.jsonl.gz: compressed stream ends early: the file is "
      "truncated; read up to line 47, the rest is lost"], True),
    ("ten_mb_attribute.otlp.jsonl.gz", {**OK, "sess-big": (1, 3)}, [unpriced(1)], False),
    ("conflicting_duplicate", {"sess-dup": (1, 1)},  # a.otlp.jsonl is read first: it wins
     [f"{W}1 span was read more than once with different content; the first read was kept "
      "(files are read in path order)", unpriced(1)], False),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "sessions", "warnings", "fails_strict"), CASES, ids=[c[0] for c in CASES]
)
def test_bad_file_outcome(name, sessions, warnings, fails_strict):
    code, found, stderr = listed(BAD / name)
    assert code == 0
    assert found == sessions
    assert stderr == warnings
    code, stdout, err = strict(BAD / name)
    if fails_strict:
        assert code == 1
        assert stdout == ""
        assert err.startswith("sessions: error: input not read in full (--strict): ")
    else:
        assert code == 0
        assert json.loads(stdout) is not None


def test_every_bad_fixture_has_a_test():
    named = {c[0] for c in CASES} | {
        "binary_garbage.bin",
        "terminal_and_formula_injection.otlp.jsonl",
    }
    on_disk = {p.name for p in BAD.iterdir()}
    assert on_disk == named


def test_binary_garbage_named_on_the_command_line_is_an_error():
    result = run("list", str(BAD / "binary_garbage.bin"))
    assert result.exit_code == 1
    assert result.stderr == (
        f"sessions: error: {BAD}/binary_garbage.bin: not a trace file: expected OTLP JSON or "
        "protobuf, console exporter output, span records (JSONL, CSV, Parquet), optionally gzip "
        "or zstd compressed\n"
    )


def test_binary_garbage_in_a_directory_is_skipped_with_a_warning(tmp_path):
    (tmp_path / "garbage.bin").write_bytes((BAD / "binary_garbage.bin").read_bytes())
    (tmp_path / "good.jsonl").write_bytes((BAD / "utf8_bom.otlp.jsonl").read_bytes())
    code, found, stderr = listed(tmp_path)
    assert (code, found) == (0, OK)
    assert stderr == [f"{W}{tmp_path}/garbage.bin: not a trace file, skipped: expected OTLP "
                      "JSON or protobuf, console exporter output, span records (JSONL, CSV, "
                      "Parquet), optionally gzip or zstd compressed"]  # fmt: skip
    assert run("list", str(tmp_path), "--strict").exit_code == 1


def test_a_line_longer_than_the_limit_is_skipped_and_memory_stays_bounded(tmp_path):
    path = tmp_path / "long.jsonl"
    good = lines(document(span("t1", "1", session__id="sess-ok")))
    huge = json.dumps(
        document(span("t2", "2", session__id="sess-huge", gen_ai__prompt="x" * 300_000))
    )
    path.write_text(good + huge + "\n" + good.replace('"t1"', '"t3"'))
    source = [inputs.Source(str(path), path)]
    tiny = Tuning(chunk_bytes=10_000, max_line_bytes=100_000)
    spans, report = loading.read_spans(
        source, {"session_id": ("session.id",), **_rest()}, tuning=tiny
    )
    assert spans.get_column("session_id").cast(str).to_list() == ["sess-ok"]  # t1; t3 is a dup
    assert report.malformed == {str(path): [(2, "longer than 0.0953674 MB: skipped")]}


@pytest.mark.parametrize("native_on", ["0", "1"])
def test_a_line_only_the_native_reader_may_read_is_skipped_when_it_cannot(
    tmp_path, monkeypatch, native_on
):
    """Past `polars_line_bytes` the polars decoder would need about ten times the line in
    memory, so such a line is skipped when the native reader is off or unsure of its batch (a
    key spelled with an escape makes it unsure), and the lines around it keep their numbers."""
    monkeypatch.setenv("SESSIONS_NATIVE", native_on)
    path = tmp_path / "long.jsonl"
    short = [lines(document(span(f"t{i}", "1", session__id=f"s{i}"))) for i in range(4)]
    long = json.dumps(document(span("t9", "9", session__id="s9", gen_ai__prompt="x" * 5000)))
    path.write_text(short[0] + short[1] + long.replace('"traceId"', '"tr\\u0061ceId"', 1) + "\n"
                    + short[2] + long + "\n" + short[3])  # fmt: skip
    tuning = Tuning(chunk_bytes=100_000, polars_line_bytes=4000)
    spans, report = loading.read_spans([inputs.Source(str(path), path)], _chains(), tuning=tuning)
    assert sorted(spans.get_column("session_id").to_list()) == ["s0", "s1", "s2", "s3"]
    assert [line for line, _ in report.malformed[str(path)]] == [3, 5]
    (_, reason), _ = report.malformed[str(path)]
    assert reason.startswith("longer than 0.0038147 MB, which only the native reader reads")
    wide = Tuning(chunk_bytes=100_000, polars_line_bytes=None)
    spans, report = loading.read_spans([inputs.Source(str(path), path)], _chains(), tuning=wide)
    assert spans.height == 5  # t9 twice: one span, the first read kept
    assert not report.malformed


@pytest.mark.parametrize("compress", [False, True])
def test_a_format_read_whole_is_refused_past_its_limit_not_read_into_memory(tmp_path, compress):
    """A pretty-printed document (read whole) over the limit is an error naming the file; the
    same spans as JSON lines (streamed) still read. The limit counts decompressed bytes, so a
    small gzip bomb cannot get past it."""
    spans = [span(f"t{i}", "1", session__id=f"s{i}", gen_ai__prompt="x" * 1000) for i in range(50)]
    pretty = json.dumps(document(*spans), indent=2).encode()
    assert len(pretty) > 20_000
    path = tmp_path / ("doc.json.gz" if compress else "doc.json")
    path.write_bytes(gzip.compress(pretty) if compress else pretty)
    streamed = tmp_path / "spans.jsonl"
    streamed.write_text(lines(*(document(s) for s in spans)))
    small = Tuning(max_whole_bytes=20_000)
    with pytest.raises(inputs.InputError, match="cannot be read whole"):
        loading.read_spans([inputs.Source(str(path), path)], _chains(), tuning=small)
    read, _ = loading.read_spans([inputs.Source(str(streamed), streamed)], _chains(), tuning=small)
    assert read.height == 50
    whole, _ = loading.read_spans([inputs.Source(str(path), path)], _chains(),
                                  tuning=Tuning(max_whole_bytes=None))  # fmt: skip
    assert whole.height == 50


def test_the_whole_read_limit_comes_from_the_environment(tmp_path):
    path = tmp_path / "doc.json"
    path.write_text(json.dumps(document(span("t", "1", session__id="s")), indent=2))
    env = {**os.environ, "SESSIONS_MAX_WHOLE_BYTES": "100"}
    done = subprocess.run([SESSIONS, "list", str(path)], capture_output=True, text=True, env=env)
    assert done.returncode == 1
    assert "over 100 bytes (decompressed) cannot be read whole" in done.stderr
    assert "SESSIONS_MAX_WHOLE_BYTES" in done.stderr
    env["SESSIONS_MAX_WHOLE_BYTES"] = "0"  # no limit
    assert (
        subprocess.run([SESSIONS, "list", str(path)], capture_output=True, env=env).returncode == 0
    )


def _chains():
    from sessions_cli.read import keys as attributes

    return attributes.CHAINS


def _rest():
    from sessions_cli.read import keys as attributes

    return {k: v for k, v in attributes.CHAINS.items() if k != "session_id"}


# ---------------------------------------------------------------------------------------------
# Output safety

HOSTILE = BAD / "terminal_and_formula_injection.otlp.jsonl"


def test_tables_strip_terminal_escapes_and_show_other_controls():
    result = run("list", str(HOSTILE), "--columns", "session_id,session_name,user_id")
    assert result.exit_code == 0
    assert "\x1b" not in result.stdout
    assert "\r" not in result.stdout
    assert "\x08" not in result.stdout
    row = result.stdout.splitlines()[2]
    assert row.split() == ["sess-click", '=HYPERLINK("http://x")', "\\x0dbob\\x08"]


@pytest.mark.parametrize(("fmt", "delimiter"), [("csv", ","), ("tsv", "\t")])
def test_csv_defuses_formulas_but_keeps_numbers(fmt, delimiter, tmp_path):
    path = tmp_path / "formulas.jsonl"
    path.write_text(lines(*(
        document(span(f"t{i}", f"{i}", start_ms=i, session__id=sid, agentmark__session_name=name,
                      agentmark__usage__cost_usd=1.5, gen_ai__usage__input_tokens=1))
        for i, (sid, name) in enumerate([("s1", "=1+1"), ("s2", "+SUM(A1)"), ("s3", "-2"),
                                         ("s4", "@cmd"), ("s6", "plain")])
    )))  # fmt: skip
    args = ("list", str(path), "--format", fmt, "--columns", "session_id,session_name,cost_usd")
    rows = list(csv.reader(io.StringIO(run(*args).stdout), delimiter=delimiter))[1:]
    names = {sid: name for sid, name, _ in rows}
    assert names == {"s1": "'=1+1", "s2": "'+SUM(A1)", "s3": "'-2", "s4": "'@cmd",
                     "s6": "plain"}  # fmt: skip
    assert {cost for _, _, cost in rows} == {"1.5"}
    raw = list(csv.reader(io.StringIO(run(*args, "--raw-csv").stdout), delimiter=delimiter))[1:]
    assert {sid: name for sid, name, _ in raw}["s1"] == "=1+1"


def test_csv_defuses_cells_starting_with_tab_or_carriage_return():
    import polars as pl

    from sessions_cli.output.render import render

    frame = pl.DataFrame({"a": ["\tx", "\rx", "x=1"], "n": [-1.5, 2.0, 3.0]})
    assert list(csv.reader(io.StringIO(render(frame, "csv")))) == [
        ["a", "n"], ["'\tx", "-1.5"], ["'\rx", "2.0"], ["x=1", "3.0"],
    ]  # fmt: skip


def test_json_output_keeps_the_data_and_is_valid_utf8():
    result = run("list", str(HOSTILE), "--json")
    record = json.loads(result.stdout)[0]
    assert record["session_id"] == "sess-\x1b]8;;https://evil.example\x07click\x1b]8;;\x07"
    assert record["user_id"] == "\x1b[2J\rbob\x08"


def test_invalid_utf8_gives_valid_utf8_json():
    result = CliBytes.invoke("list", str(BAD / "invalid_utf8.otlp.jsonl"), "--json")
    result.decode("utf-8")  # raises if not valid UTF-8


class CliBytes:
    @staticmethod
    def invoke(*args) -> bytes:
        from click.testing import CliRunner

        from sessions_cli.cli.main import cli

        return CliRunner().invoke(cli, list(args), catch_exceptions=False).stdout_bytes


def test_lone_surrogate_escapes_become_replacement_characters(tmp_path):
    path = tmp_path / "surrogates.jsonl"
    doc = lines(document(span("t", "1", name="x", session__id="PLACEHOLDER")))
    path.write_text(doc.replace("PLACEHOLDER", "s\\ud800z"))
    result = run("list", str(path), "--json")
    assert json.loads(result.stdout)[0]["session_id"] == "s\ufffdz"
    assert result.stderr == f"{W}{path}: lone UTF-16 surrogate escapes replaced with U+FFFD\n"


def test_ten_thousand_files_in_a_directory(tmp_path):
    """Small files are decoded in batches (one polars call per thousands of files), and
    warnings about them are capped rather than one line per file."""
    for i in range(10_000):
        text = lines(document(span(f"t{i}", "1", session__id="sess-many",
                                   gen_ai__usage__input_tokens=1)))  # fmt: skip
        if i % 1000 == 0:
            text += '{"truncated": \n'  # ten files end with a broken line
        (tmp_path / f"part-{i:05d}.jsonl").write_text(text)
    code, found, stderr = listed(tmp_path)
    assert code == 0
    assert found == {"sess-many": (10_000, 10_000)}
    assert len(stderr) == 7
    assert stderr[0] == (
        f"{W}{tmp_path}/part-00000.jsonl: skipped 1 malformed line (line 2; first: invalid JSON: "
        "the line ends early (truncated?))"
    )
    assert stderr[-2] == f"{W}... and 5 more files with malformed lines"
    assert stderr[-1] == unpriced(10_000)


# ---------------------------------------------------------------------------------------------
# Hostile input, round two (issue 19): each ends with a message naming the file, never an
# internal error, and what is intact still counts


def _good_line() -> str:
    return lines(document(span("t1", "1", session__id="sess-ok", gen_ai__usage__input_tokens=5)))


def _hostile_files(tmp_path):
    line = _good_line()
    deep = ('{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "a", "attributes": '
            '[{"key": "x", "value": ' + "[" * 5000 + "]" * 5000 + "}]}]}]}]}\n")  # fmt: skip
    gzipped = gzip.compress(line.encode())
    import polars as pl

    frame = pl.DataFrame({"trace_id": [bytes.fromhex("0123456789abcdef0123456789abcdef")],
                          "span_id": [bytes.fromhex("0123456789abcdef")], "session_id": ["sess-ok"],
                          "input_tokens": [5]})  # fmt: skip
    frame.write_parquet(tmp_path / "binary_ids.parquet")
    files = {
        "leading_space.jsonl": " " + line,
        "leading_blank_lines.jsonl": "\n\n\n" + line,
        "leading_9k_whitespace.jsonl": " " * 9000 + line,
        "deeper_than_1000.jsonl": deep + line,
        "gzip_in_gzip.jsonl.gz": gzip.compress(gzipped),
    }
    for name, content in files.items():
        path = tmp_path / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return ["binary_ids.parquet", *files]


@pytest.mark.parametrize(
    "name",
    ["leading_space.jsonl", "leading_blank_lines.jsonl", "leading_9k_whitespace.jsonl",
     "deeper_than_1000.jsonl", "gzip_in_gzip.jsonl.gz", "binary_ids.parquet"],
)  # fmt: skip
def test_hostile_files_that_hold_a_good_span_give_it(tmp_path, name):
    _hostile_files(tmp_path)
    code, found, stderr = listed(tmp_path / name)
    assert code == 0
    assert found == {"sess-ok": (1, 5)}
    assert not any("internal error" in line for line in stderr)
    if name == "deeper_than_1000.jsonl":
        assert stderr[0].endswith("first: invalid JSON (nested deeper than the reader follows "
                                  "(about 1,000 levels)))")  # fmt: skip


@pytest.mark.parametrize(
    ("content", "said"),
    [(b"\x28\xb5\x2f\xfd" + bytes(range(100)), "cannot read (zstd decompress"),
     (gzip.compress(b"x" * 100)[:10] + b"\xff" * 40, "cannot read (Error -3 while decompressing"),
     (b"trace_id,span_id\n0123456789abcdef0123456789abcdef,0123456789abcdef,extra\n",
      "unreadable CSV (found more fields than defined"),
     (b'trace_id,span_id,session_id\n0123456789abcdef0123456789abcdef,0123456789abcdef,"s\n',
      "unreadable CSV (could not parse")],
)  # fmt: skip
def test_unreadable_files_are_named_and_a_directory_goes_on_without_them(tmp_path, content, said):
    bad = tmp_path / "bad.bin"
    bad.write_bytes(content)
    alone = run("list", str(bad))
    assert alone.exit_code == 1
    assert alone.stderr.startswith(f"sessions: error: {bad}: {said}")
    (tmp_path / "good.jsonl").write_text(_good_line())
    code, found, stderr = listed(tmp_path)
    assert (code, found) == (0, {"sess-ok": (1, 5)})
    assert stderr[0].startswith(f"{W}{bad}: {said}")
    assert stderr[0].endswith("; skipped")
    assert run("list", str(tmp_path), "--strict").exit_code == 1


def test_errors_and_tables_never_pass_escapes_or_bidi_controls_to_the_terminal(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text(lines(
        document(span("t1", "1", session__id="s\x1b]52;c;aGk=\x07one")),  # OSC 52: clipboard
        document(span("t2", "1", session__id="s\u202etwo\u200b")),  # right-to-left override
    ))  # fmt: skip
    error = run("show", "s", str(path))
    assert error.exit_code == 1
    assert "\x1b" not in error.stderr
    assert "\u202e" not in error.stderr
    assert "s\\u202etwo\\u200b" in error.stderr
    table = run("list", str(path), "--columns", "session_id").stdout
    assert "\u202e" not in table
    assert "\x1b" not in table


def test_cr_only_line_endings_are_lines(tmp_path):
    path = tmp_path / "mac.jsonl"
    path.write_text((_good_line() + lines(document(span("t2", "1", session__id="sess-two"))))
                    .replace("\n", "\r"))  # fmt: skip
    code, found, stderr = listed(path)
    assert code == 0
    assert not any("malformed" in line for line in stderr)
    assert set(found) == {"sess-ok", "sess-two"}


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_is_read_when_named_and_skipped_inside_a_directory(tmp_path):
    import threading

    (tmp_path / "good.jsonl").write_text(_good_line())
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    inside = subprocess.run([SESSIONS, "list", str(tmp_path), "--json"], capture_output=True,
                            text=True, timeout=60)  # fmt: skip
    assert inside.returncode == 0, inside.stderr
    assert [r["session_id"] for r in json.loads(inside.stdout)] == ["sess-ok"]

    def feed() -> None:
        with fifo.open("w") as pipe:
            pipe.write(_good_line())

    writer = threading.Thread(target=feed)
    writer.start()
    named = subprocess.run([SESSIONS, "list", str(fifo), "--json"], capture_output=True,
                           text=True, timeout=60)  # fmt: skip
    writer.join()
    assert named.returncode == 0, named.stderr
    assert [r["session_id"] for r in json.loads(named.stdout)] == ["sess-ok"]


def test_process_substitution_keeps_every_byte(tmp_path):
    (tmp_path / "good.jsonl").write_text(_good_line())
    result = subprocess.run(
        ["bash", "-c", f'"{SESSIONS}" list <(cat "{tmp_path}/good.jsonl") --json'],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert [r["session_id"] for r in json.loads(result.stdout)] == ["sess-ok"]


def test_a_zstd_stream_cut_short_says_so_and_keeps_what_came_before(tmp_path):
    import zstandard

    text = "".join(lines(document(span(f"t{i}", "1", session__id=f"s{i}",
                                       gen_ai__usage__input_tokens=1)))
                   for i in range(1, 3001))  # fmt: skip
    packed = zstandard.ZstdCompressor(level=1).compress(text.encode())
    cut = tmp_path / "cut.jsonl.zst"
    cut.write_bytes(packed[: len(packed) * 3 // 4])
    code, found, stderr = listed(cut)
    assert code == 0
    assert 0 < len(found) < 3000
    assert any("compressed stream ends early: the file is truncated" in line for line in stderr)
    whole = tmp_path / "whole.jsonl.zst"
    whole.write_bytes(packed + zstandard.ZstdCompressor().compress(b""))  # two frames
    assert len(listed(whole)[1]) == 3000


def _request(session: str) -> bytes:
    """An ExportTraceServiceRequest of one span in its own trace and session."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    message = ExportTraceServiceRequest()
    one = message.resource_spans.add().scope_spans.add().spans.add()
    one.trace_id = session.encode().rjust(16, b"0")
    one.span_id = b"\x01" * 8
    one.name = "turn"
    one.start_time_unix_nano, one.end_time_unix_nano = 1_790_000_000 * 10**9, 1_790_000_001 * 10**9
    attribute = one.attributes.add()
    attribute.key, attribute.value.string_value = "session.id", session
    return message.SerializeToString()


def _framed(*bodies: bytes) -> bytes:
    return b"".join(len(body).to_bytes(4, "big") + body for body in bodies)


@pytest.mark.parametrize(("native_on", "processes"), [("1", 1), ("0", 1), ("0", 2)])
def test_a_bad_message_ends_its_framed_file_there_and_no_other(
    tmp_path, monkeypatch, native_on, processes
):
    """Messages are checked where they are decoded, on worker threads or processes, and the
    batches after the bad one were decoded ahead: its file still keeps exactly the messages
    before it, and the next file all of its own, with small batches and large."""
    monkeypatch.setenv("SESSIONS_NATIVE", native_on)
    before = [_request(f"s{i:02}") for i in range(12)]
    after = [_request(f"s{i:02}") for i in range(12, 20)]
    bad = b"\xff\xff\xff\xff"  # not a protobuf message: tag 0x7fffffff... never ends
    cut, whole = tmp_path / "a.binpb", tmp_path / "b.binpb"
    cut.write_bytes(_framed(*before, bad, *after))
    whole.write_bytes(_framed(_request("w1"), _request("w2")))
    offset = len(_framed(*before))
    sources = [inputs.Source(str(cut), cut), inputs.Source(str(whole), whole)]
    for chunk_bytes in (150, 1_000_000):
        tuning = Tuning(chunk_bytes=chunk_bytes, read_workers=2, protobuf_processes=processes)
        spans, report = loading.read_spans(sources, _chains(), tuning=tuning)
        expected = [f"s{i:02}" for i in range(12)] + ["w1", "w2"]
        assert sorted(spans.get_column("session_id").to_list()) == expected
        assert report.truncated == {
            str(cut): f"the message at byte {offset:,} is not an OTLP traces request; the "
            "messages before it are read, the rest is lost"
        }
