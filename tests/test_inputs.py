"""Reading: formats detected by content, compression, malformed lines, paths and stdin."""

from __future__ import annotations

import gzip
import json

import polars as pl
import pytest

from sessions_cli.errors import UsageError
from sessions_cli.output import render
from sessions_cli.read import keys as attributes
from sessions_cli.read import sources as inputs
from sessions_cli.store import loading
from sessions_cli.tuning import Tuning
from tests.conftest import EDGE, REAL, by_id, run, run_json
from tests.otlp_builder import document, lines, span


def read(path):
    sources = inputs.resolve((str(path),), stdin_is_tty=True, env={})
    return loading.read_spans(sources, attributes.CHAINS)


@pytest.mark.parametrize("use_stdin", [False, True])
def test_pretty_printed_document(use_stdin):
    path = EDGE / "pretty_document.json"
    rows = run_json("list", input=path.read_bytes()) if use_stdin else run_json("list", str(path))
    assert [(r["session_id"], r["input_tokens"], r["output_tokens"]) for r in rows] == [
        ("s-pretty", 7, 3)
    ]


def test_array_of_documents_with_old_scope_name_and_native_tag_array():
    [row] = run_json("list", str(EDGE / "array_of_documents.json"))
    assert row["session_id"] == "s-array"
    assert row["tags"] == ["x", "y"]
    assert row["error_count"] == 1  # STATUS_CODE_ERROR, the enum's name


def test_resource_attributes_apply_and_span_attributes_override():
    spans, _ = read(EDGE / "resource_attributes.otlp.jsonl")
    users = dict(zip(spans["name"], spans["user_id"], strict=True))
    assert users == {"job": "res-user", "step": "override"}
    assert set(spans["session_id"]) == {"s-resource"}


def test_a_key_given_twice_in_one_span_is_taken_once_first_wins(tmp_path):
    """OTLP keys should be unique in a span, but a sender can repeat one: each field takes the
    first, as it does from a chain, and the span stays one span (not two, read "twice")."""
    pairs = [("session.id", "s-1"), ("agentmark.tags", "a"), ("agentmark.tags", "b"),
             ("session.id", "s-2"), ("agentmark.metadata.plan", "pro"),
             ("agentmark.metadata.plan", "free")]  # fmt: skip
    attrs = [{"key": k, "value": {"stringValue": v}} for k, v in pairs]
    one = span("a" * 32, "b" * 16, name="root")
    one["attributes"] = attrs
    path = tmp_path / "repeated.otlp.jsonl"
    path.write_text(json.dumps(document(one)) + "\n")
    result = run("list", str(path), "--json")
    assert result.exit_code == 0
    assert result.stderr == ""
    [row] = json.loads(result.stdout)
    assert (row["session_id"], row["span_count"], row["tags"]) == ("s-1", 1, ["a"])
    assert row["metadata"] == {"plan": "pro"}


def test_an_array_value_behind_an_escaped_key_is_still_read(tmp_path):
    """Lines that do not mention arrayValue are decoded for scalars only (faster). A key
    spelled with escapes slips past that check: the array must still be read, and a value of
    a key nobody reads must not matter."""
    one = span("a" * 32, "b" * 16, name="root", session__id="s-esc")
    one["attributes"] += [
        {"key": "agentmark.tags", "value": {"arrayValue": {"values": [{"stringValue": "x"}]}}},
        {"key": "app.unread", "value": {}},
    ]
    text = json.dumps(document(one)).replace('"arrayValue"', '"\\u0061rrayValue"')
    assert "arrayValue" not in text
    path = tmp_path / "escaped.otlp.jsonl"
    path.write_text(text + "\n")
    result = run("list", str(path), "--json")
    assert (result.exit_code, result.stderr) == (0, "")
    [row] = json.loads(result.stdout)
    assert (row["session_id"], row["tags"]) == ("s-esc", ["x"])


def _tagged(value_first: bool = False) -> dict:
    one = span("c" * 32, "d" * 16, name="root", session__id="s-arr")
    tags = {
        "key": "langfuse.trace.tags",
        "value": {"arrayValue": {"values": [{"stringValue": "t"}]}},
    }
    plan = {"key": "ai.telemetry.metadata.plan", "value": {"stringValue": "pro"}}
    one["attributes"] += [dict(reversed(tags.items())) if value_first else tags, plan]
    return one


def _with_unread_array(one: dict) -> dict:
    reasons = {"arrayValue": {"values": [{"stringValue": "stop"}]}}
    one["attributes"].append({"key": "gen_ai.response.finish_reasons", "value": reasons})
    return one


@pytest.mark.parametrize(
    ("make", "guess"),
    [
        (
            lambda: _with_unread_array(span("c" * 32, "d" * 16, name="root", session__id="s-arr")),
            False,
        ),
        (lambda: _tagged(), True),
        (lambda: _with_unread_array(_tagged()), True),
        (lambda: _tagged(value_first=True), False),  # the guess misses; the decode must not
    ],
)
def test_arrays_decide_the_decode_only_under_wanted_keys(make, guess):
    """An array under a key nobody reads (finish reasons, in most real exports) keeps the
    cheaper scalar decode; one under a wanted key (Langfuse's tags) goes straight to the full
    one. Either way, and when the guess is wrong, the spans are the same."""
    from sessions_cli.read import otlp

    text = pl.Series([json.dumps(document(make()))])
    assert otlp._wanted_nested(text, attributes.CHAINS) is guess
    [row] = otlp.spans_from_lines(text, attributes.CHAINS).to_dicts()
    assert row["session_id"] == "s-arr"
    has_tags = "langfuse.trace.tags" in text.item()
    assert row["tags"] == (["t"] if has_tags else None)
    assert row["metadata"] == ([{"key": "plan", "value": "pro"}] if has_tags else None)


def test_malformed_lines_are_skipped_reported_once_and_the_rest_counted():
    result = run("list", str(EDGE / "malformed_lines.otlp.jsonl"), "--json")
    assert result.exit_code == 0
    [row] = json.loads(result.stdout)
    assert (row["session_id"], row["input_tokens"]) == ("s-malformed", 5)
    warnings = result.stderr.strip().splitlines()
    assert len(warnings) == 1
    assert "malformed_lines.otlp.jsonl: skipped 3 malformed lines (line 2, 3, 4;" in warnings[0]


def test_strict_turns_malformed_lines_into_an_error():
    result = run("list", str(EDGE / "malformed_lines.otlp.jsonl"), "--strict", "--json")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "sessions: error: input not read in full (--strict)" in result.stderr
    assert "line 2, 3, 4" in result.stderr


def test_truncated_last_line_is_named():
    _, report = read(EDGE / "malformed_lines.otlp.jsonl")
    line, reason = report.malformed[str(EDGE / "malformed_lines.otlp.jsonl")][-1]
    assert line == 4
    assert "truncated" in reason


def test_empty_file_is_empty_output_not_an_error():
    result = run("list", str(EDGE / "empty.jsonl"), "--json")
    assert (result.exit_code, result.stdout) == (0, "[]\n")
    assert "no spans" in result.stderr
    csv = run("list", str(EDGE / "empty.jsonl"), "--csv")
    assert csv.stdout.startswith("session_id,session_name,user_id,users,start,end,")
    assert len(csv.stdout.splitlines()) == 1


def test_missing_file_is_an_error_naming_it():
    result = run("list", "no/such/file.jsonl")
    assert result.exit_code == 1
    assert result.stderr == "sessions: error: no/such/file.jsonl: no such file or directory\n"


def test_unreadable_explicit_file_is_an_error(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello\nworld\n")
    result = run("list", str(path))
    assert result.exit_code == 1
    assert "not a trace file" in result.stderr


def test_directory_is_read_recursively_skipping_other_files(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "x.jsonl").write_bytes(REAL.read_bytes())
    (tmp_path / "a" / "README.txt").write_text("not traces\n")
    (tmp_path / ".hidden.jsonl").write_text("{broken")
    result = run("list", str(tmp_path), "--json")
    assert result.exit_code == 0
    assert len(json.loads(result.stdout)) == 4
    assert "README.txt: not a trace file" in result.stderr


def test_glob_and_environment_variable(tmp_path, monkeypatch):
    (tmp_path / "one.jsonl").write_text(lines(document(span("a1", "1", session__id="s1"))))
    (tmp_path / "two.jsonl").write_text(lines(document(span("a2", "2", session__id="s2"))))
    rows = run_json("list", str(tmp_path / "*.jsonl"))
    assert sorted(r["session_id"] for r in rows) == ["s1", "s2"]
    no_match = run("list", str(tmp_path / "*.nothing"))
    assert no_match.exit_code == 1
    assert "no file matches" in no_match.stderr
    sources = inputs.resolve((), stdin_is_tty=True, env={"SESSIONS_TRACES": str(tmp_path)})
    assert [s.path.name for s in sources] == ["one.jsonl", "two.jsonl"]


def test_no_input_on_a_terminal_says_what_to_pass():
    with pytest.raises(UsageError, match="SESSIONS_TRACES"):
        inputs.resolve((), stdin_is_tty=True, env={})


def test_bom_crlf_blank_lines_and_numbers_as_numbers(tmp_path):
    doc = document(span("a", "1", session__id="s", gen_ai__usage__input_tokens=4))
    doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["startTimeUnixNano"] = (
        1_790_000_000 * 10**9
    )
    text = "\ufeff" + json.dumps(doc) + "\r\n\r\n" + json.dumps(doc).replace('"4"', "4") + "\r\n"
    (tmp_path / "t.jsonl").write_bytes(text.encode())
    [row] = run_json("list", str(tmp_path / "t.jsonl"))
    assert row["input_tokens"] == 4
    assert row["start"] == "2026-09-21T14:13:20.000000000Z"


def test_a_compressed_stream_cut_within_its_first_line_says_so(tmp_path):
    (tmp_path / "cut.gz").write_bytes(gzip.compress(REAL.read_bytes())[:200])
    result = run("list", str(tmp_path / "cut.gz"))
    assert result.exit_code == 0
    assert "cut.gz: compressed stream ends early: the file is truncated" in result.stderr
    assert run("list", str(tmp_path / "cut.gz"), "--strict").exit_code == 1


def test_gzip_members_in_a_row_and_trailing_garbage_read_as_zcat_does(tmp_path):
    text = REAL.read_bytes()
    lines_in = text.splitlines(keepends=True)
    half = len(lines_in) // 2
    members = gzip.compress(b"".join(lines_in[:half])) + gzip.compress(b"".join(lines_in[half:]))
    (tmp_path / "two.gz").write_bytes(members)
    (tmp_path / "garbage.gz").write_bytes(gzip.compress(text) + b"not gzip")
    whole = run_json("list", str(REAL))
    assert run_json("list", str(tmp_path / "two.gz")) == whole
    result = run("list", str(tmp_path / "garbage.gz"), "--json")
    assert json.loads(result.stdout) == whole
    assert "8 bytes after the end of the gzip data were ignored (as zcat does)" in result.stderr


def test_chunk_size_does_not_change_the_spans():
    sources = inputs.resolve((str(REAL),), stdin_is_tty=True, env={})
    whole, _ = loading.read_spans(sources, attributes.CHAINS)
    tiny, _ = loading.read_spans(sources, attributes.CHAINS, tuning=Tuning(chunk_bytes=1000))
    assert whole.sort("span_id").equals(tiny.sort("span_id"))


@pytest.mark.parametrize("suffix", ["parquet", "csv", "jsonl"])
def test_flat_span_records_round_trip(tmp_path, suffix):
    spans, _ = read(REAL)
    path = tmp_path / f"spans.{suffix}"
    if suffix == "parquet":
        spans.write_parquet(path)
    else:  # what `sessions` itself writes for span-level output
        path.write_text(render.render(spans, suffix))
    assert run_json("list", str(path)) == run_json("list", str(REAL))


def test_session_key_replaces_the_chain(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text(
        lines(
            document(
                span("a", "1", session__id="built-in", app__conversation="mine"),
                span("b", "2", session__id="only-built-in"),
            )
        )
    )
    assert [r["session_id"] for r in run_json("list", str(path))] == ["built-in", "only-built-in"]
    rows = run_json("list", str(path), "--session-key", "app.conversation")
    assert [r["session_id"] for r in rows] == ["mine"]


def test_a_session_key_that_another_field_also_reads_feeds_both(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text(lines(document(span("a", "1", user__id="ana", agentmark__user_id=""))))
    [row] = run_json("list", str(path), "--session-key", "user.id")
    assert (row["session_id"], row["user_id"]) == ("ana", "ana")


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_flat_records_with_uppercase_ids_are_normalised(tmp_path, suffix):
    """Span records whose ids are all lowercase hex skip id normalisation; one record in
    upper case must send the whole file through it."""
    trace, span_id = "0102030405060708090a0b0c0d0e0f10", "0102030405060708"
    rows = [
        {"trace_id": t, "span_id": s, "name": "x", "session_id": "sess-flat",
         "start_time_unix_nano": 1_790_000_000_000_000_000,
         "end_time_unix_nano": 1_790_000_001_000_000_000}
        for t, s in ((trace, span_id), (trace.upper(), span_id.upper()))
    ]  # fmt: skip
    path = tmp_path / f"spans{suffix}"
    if suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        path.write_text(pl.DataFrame(rows).write_csv())
    [row] = run_json("list", str(path))
    assert row["span_count"] == 1  # the same span, read twice
    [shown] = run_json("show", "sess-flat", str(path))["traces"]
    assert shown["trace_id"] == trace


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_flat_record_statuses_in_any_form_are_read_even_beside_canonical_ones(tmp_path, suffix):
    """Statuses already as convert writes them are kept as they are; one in another form
    (upper case, padded, an OTLP code) sends the whole column through the status rule."""
    forms = ["error", "ok", None, "ERROR", " error ", "STATUS_CODE_ERROR", "2", "Ok", "bogus"]
    rows = [
        {"trace_id": f"{n + 1:032x}", "span_id": f"{n + 1:016x}", "name": "x", "status": status,
         "session_id": "sess-status", "start_time_unix_nano": 1_790_000_000_000_000_000,
         "end_time_unix_nano": 1_790_000_001_000_000_000}
        for n, status in enumerate(forms)
    ]  # fmt: skip
    path = tmp_path / f"spans{suffix}"
    frame = pl.DataFrame(rows)
    frame.write_parquet(path) if suffix == ".parquet" else path.write_text(frame.write_csv())
    [row] = run_json("list", str(path))
    # "error", "ERROR", " error ", "STATUS_CODE_ERROR" and "2" are errors; the rest are not.
    assert (row["trace_count"], row["error_count"]) == (9, 5)


def test_base64_and_hex_ids_of_one_span_are_the_same_span(tmp_path):
    hex_doc = document(
        span("0102030405060708090a0b0c0d0e0f10", "0102030405060708", session__id="s")
    )
    b64 = json.loads(json.dumps(hex_doc))
    b64_span = b64["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    b64_span["traceId"], b64_span["spanId"] = "AQIDBAUGBwgJCgsMDQ4PEA==", "AQIDBAUGBwg="
    (tmp_path / "t.jsonl").write_text(lines(hex_doc, b64))
    [row] = run_json("list", str(tmp_path / "t.jsonl"))
    assert row["span_count"] == 1


def test_unreadable_file_is_an_error_naming_it(tmp_path, monkeypatch):
    path = tmp_path / "locked.jsonl"
    path.write_text("{}")
    real_open = type(path).open

    def deny(self, *args, **kwargs):
        if self == path:
            raise PermissionError(13, "Permission denied")
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(type(path), "open", deny)  # tests run as root, where chmod 0 reads fine
    result = run("list", str(path))
    assert result.exit_code == 1
    assert result.stderr == f"sessions: error: {path}: cannot read (Permission denied)\n"


def test_resent_batch_is_counted_once():
    rows = run_json("list", str(EDGE / "wrapper_usage.otlp.jsonl"))
    assert by_id(rows)["s-edge"]["span_count"] == 6  # the re-sent batch is counted once


def test_a_first_line_longer_than_the_read_buffer_is_still_json_lines():
    """Batch lines are often hundreds of KB; the format is found from whole lines, so such a
    file is never mistaken for one pretty-printed document (and read whole into memory)."""
    long_line = json.dumps(document(*(span("t", f"{i:016x}", name="x" * 200) for i in range(300))))
    block = (long_line + "\n" + long_line + "\n").encode()
    assert len(long_line) > 64 * 1024
    assert inputs._json_mode(block) == "lines"
    assert inputs._json_mode(b"not json\n" + block) == "lines"  # a malformed first line
    assert inputs._json_mode(b'{\n  "resourceSpans": [\n    1\n  ]\n}\n') == "document"
    assert inputs._json_mode(b'{"trace_id": "ab", "span_id": "cd"}\n') == "flat"


def test_a_raw_control_character_is_a_malformed_line_and_the_rest_counts(tmp_path):
    """Lines are split by polars as one-column CSV with U+001F as the separator, which valid
    JSON never holds raw: such a line goes to the line-by-line path and is named."""
    good = [json.dumps(document(span(t, "1", session__id="s"))) for t in ("a", "c")]
    bad = json.dumps(document(span("b", "2", name="x@y"))).replace("@", "\x1f")  # raw, unescaped
    path = tmp_path / "t.jsonl"
    path.write_text(f"{good[0]}\n{bad}\n{good[1]}\n", encoding="utf-8")
    spans, report = read(path)
    assert spans.height == 2
    [(line, reason)] = report.malformed[str(path)]
    assert line == 2
    assert reason.startswith("invalid JSON")


def test_decoding_a_batch_in_pieces_changes_nothing(monkeypatch):
    """Lines are decoded about a megabyte at a time; any piece size gives the same spans."""
    sources = inputs.resolve((str(REAL), str(EDGE)), stdin_is_tty=True, env={})
    whole, _ = loading.read_spans(sources, attributes.CHAINS)
    monkeypatch.setattr("sessions_cli.read.otlp._DECODE_BYTES", 2_000)
    pieces, _ = loading.read_spans(sources, attributes.CHAINS)
    assert pieces.equals(whole)
