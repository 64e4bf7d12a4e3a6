"""`sessions convert`, and results that do not depend on how the input was read: chunk size,
compression, or a converted Parquet/JSONL/CSV copy (issue 5)."""

from __future__ import annotations

import gzip
import io
import json
import os
from pathlib import Path

import pytest

from sessions_cli.cli import steps
from sessions_cli.model import sessions as model
from sessions_cli.read import keys as attributes
from sessions_cli.read import sources as inputs
from sessions_cli.store import converted as converted_store
from sessions_cli.store import loading
from sessions_cli.tuning import Tuning
from tests.conftest import FIXTURES, GENERATED, REAL, run, run_json


def sessions_of(spans) -> list[dict]:
    built = model.build(spans)
    return built.sessions.sort("session_id").to_dicts()


@pytest.mark.parametrize("chunk_bytes", [1_000, 64_000, 1_000_000, Tuning().chunk_bytes])
def test_chunk_size_changes_no_number(chunk_bytes, tmp_path):
    plain = tmp_path / "generated.jsonl"
    plain.write_bytes(gzip.decompress(GENERATED.read_bytes()))
    sources = [inputs.Source(str(plain), plain)]
    reference, _ = loading.read_spans(sources, attributes.CHAINS, tuning=Tuning(chunk_bytes=10**9))
    spans, report = loading.read_spans(
        sources, attributes.CHAINS, tuning=Tuning(chunk_bytes=chunk_bytes)
    )
    assert not report.malformed
    assert spans.height == reference.height
    assert sessions_of(spans) == sessions_of(reference)


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl", ".csv"])
@pytest.mark.parametrize("source", [GENERATED, REAL], ids=["generated", "real"])
def test_converted_copies_give_identical_results(tmp_path, suffix, source):
    out = tmp_path / f"spans{suffix}"
    result = run("convert", str(source), "-o", str(out))
    assert result.exit_code == 0, result.stderr
    original = run_json("list", str(source))
    orphans = run_json("list", "--orphans", str(source))
    spans = sum(row["span_count"] for row in original + orphans)
    assert result.stderr == f"sessions: wrote {spans:,} spans to {out}\n"
    assert run_json("list", str(out)) == original
    assert run_json("list", "--orphans", str(out)) == orphans
    some = original[0]["session_id"]
    assert run_json("show", some, str(out)) == run_json("show", some, str(source))
    assert run_json("stats", str(out)) == run_json("stats", str(source))


def convert_spilled(tmp_path, suffix: str):
    """The generated fixture as plain JSON lines, and converted from a spilled store (groups
    of at most 300 spans): (the JSON, the converted file, how many spans it holds)."""
    from sessions_cli.output import export

    plain = tmp_path / "generated.jsonl"
    plain.write_bytes(gzip.decompress(GENERATED.read_bytes()))
    sources = [inputs.Source(str(plain), plain)]
    store, _ = loading.read_store(
        sources,
        attributes.CHAINS,
        tuning=Tuning(chunk_bytes=50_000, memory_rows=100, group_rows=300),
    )
    with store:
        out = tmp_path / f"spilled{suffix}"
        written = export.write(store.groups(), str(out), scratch=store.directory)
        parts = len(list(store.directory.glob("convert-*.arrow")))
        assert parts > 1 if suffix == ".parquet" else parts == 0
    return plain, out, written


def same_answers(path, reference) -> None:
    """Every command answers the same of both files."""
    assert run_json("list", str(path)) == run_json("list", str(reference))
    assert run_json("list", "--orphans", str(path)) == run_json("list", "--orphans", str(reference))
    assert run_json("stats", str(path)) == run_json("stats", str(reference))
    for some in [row["session_id"] for row in run_json("list", str(reference))][:3]:
        assert run_json("show", some, str(path)) == run_json("show", some, str(reference))
        spans = run_json("timeline", some, "--spans", str(path))
        assert spans == run_json("timeline", some, "--spans", str(reference))


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl", ".csv"])
def test_a_spilled_store_converts_group_by_group_to_the_same_spans(tmp_path, suffix):
    """Past the store's memory limit, convert writes a group at a time (Parquet through
    Arrow files in the spill directory): the file holds the same spans as from memory."""
    plain, out, written = convert_spilled(tmp_path, suffix)
    spans, _ = loading.read_spans([inputs.Source(str(plain), plain)], attributes.CHAINS)
    assert written == spans.height
    assert run_json("list", str(out)) == run_json("list", str(plain))
    assert run_json("list", "--orphans", str(out)) == run_json("list", "--orphans", str(plain))
    if suffix == ".csv":  # one header, however many groups
        assert out.read_text().count("trace_id,span_id") == 1


def test_parquet_read_a_slice_at_a_time_gives_the_same_results(tmp_path, monkeypatch):
    """Parquet that `convert` did not write (here: without its groups) goes through the
    store a slice at a time."""
    import polars as pl

    from sessions_cli.read import flat

    converted, out = tmp_path / "converted.parquet", tmp_path / "spans.parquet"
    assert run("convert", str(GENERATED), "-o", str(converted)).exit_code == 0
    pl.read_parquet(converted).write_parquet(out)
    assert converted_store.grouped_parquet(out, "spans.parquet", 100) is None
    whole = run_json("list", str(out))
    monkeypatch.setattr(flat, "PARQUET_ROWS", 300)  # 2,008 spans: seven slices
    assert run_json("list", str(out)) == whole == run_json("list", str(GENERATED))


def test_a_converted_file_is_read_by_its_own_groups_with_the_same_answers(tmp_path):
    """convert records its groups of whole traces in the Parquet metadata; a command reading
    that one file takes them as they are, with nothing spilled."""
    import polars as pl

    from sessions_cli.read import flat

    plain, out, written = convert_spilled(tmp_path, ".parquet")
    sizes = json.loads(pl.read_parquet_metadata(out)[flat.GROUPS])
    assert sum(sizes) == written
    assert len(sizes) > 5
    store, _ = loading.read_store(
        [inputs.Source(str(out), out)], attributes.CHAINS, tuning=Tuning(memory_rows=100)
    )
    with store:
        assert isinstance(store, converted_store.GroupedParquet)
        assert store.as_written  # its ids add up to the sums convert recorded
        assert [group.height for group in store.groups()] == sizes
        assert not list(store.directory.glob("spans-*"))
    same_answers(out, plain)


def test_a_converted_file_whose_ids_changed_since_is_checked_again(tmp_path):
    """With convert's metadata kept, a file whose ids are no longer the ones it wrote (here:
    a parent's span id padded with a space, which normalises back to itself) is not taken as
    written: its ids are normalised and deduplicated as any file's, and it answers as the
    JSON does. Taken as written, the padded id would leave the parent's children orphans."""
    import polars as pl

    plain, out, _ = convert_spilled(tmp_path, ".parquet")
    assert converted_store.grouped_parquet(out, "as written", 100).as_written
    kept = {k: v for k, v in pl.read_parquet_metadata(out).items() if k.startswith("sessions.")}
    assert set(kept) == {"sessions.groups", "sessions.id_sums"}
    frame = pl.read_parquet(out)
    parent = pl.col("span_id") == frame.get_column("parent_span_id").drop_nulls()[0]
    padded = pl.when(parent).then(" " + pl.col("span_id")).otherwise("span_id").alias("span_id")
    edited = tmp_path / "edited.parquet"
    frame.with_columns(padded).write_parquet(edited, metadata=kept)
    store = converted_store.grouped_parquet(edited, "edited", 100)
    assert store is not None
    assert not store.as_written
    same_answers(edited, plain)


def grouped_file(path, frame, sizes) -> None:
    """A Parquet file that claims `sizes` as its groups, as convert would."""
    from sessions_cli.read import flat

    frame.write_parquet(path, metadata={flat.GROUPS: json.dumps(sizes)})


def test_groups_that_split_a_trace_are_not_trusted(tmp_path):
    """A file whose groups split a trace (not written by convert as it is now) is read the
    usual way: otherwise the trace would be counted twice, once per group."""
    import polars as pl

    plain, out, written = convert_spilled(tmp_path, ".parquet")
    shuffled = tmp_path / "shuffled.parquet"
    grouped_file(shuffled, pl.read_parquet(out).sort("span_id"), [written // 2] * 2)
    assert converted_store.grouped_parquet(shuffled, "shuffled", 100) is None
    same_answers(shuffled, plain)


@pytest.mark.parametrize(
    ("name", "twin", "sizes"),
    [
        ("uppercase", "AB" * 16, [1, 1]),
        # 32 characters, lowercase, but base64 inside spaces: the same 16 bytes as the first id.
        ("padded-base64", " " * 8 + "abcdefghijklmnopqrstuw==", [1, 1]),
        ("short", "ab" * 16, [1]),
        ("text", "ab" * 16, "2"),
        ("minus", "ab" * 16, [3, -1]),
    ],
)
def test_groups_are_not_trusted_when_ids_could_merge_or_sizes_do_not_add_up(
    tmp_path, name, twin, sizes
):
    """The second id normalises to the first: the two halves of this trace, one in each group,
    are one trace. Sizes that do not cover the file are not groups either."""
    import polars as pl

    first = "69b71d79f8218a39259a7a29aabb2dbb" if name == "padded-base64" else "ab" * 16
    spans = pl.DataFrame(
        {
            "trace_id": [first, twin],
            "span_id": ["1" * 16, "2" * 16],
            "parent_span_id": [None, "1" * 16],
            "start_time_unix_nano": [1_790_000_000_000_000_000] * 2,
            "end_time_unix_nano": [1_790_000_001_000_000_000] * 2,
            "session_id": ["s-1"] * 2,
        }
    )
    path = tmp_path / f"{name}.parquet"
    grouped_file(path, spans, sizes)
    assert converted_store.grouped_parquet(path, name, 100) is None
    [row] = run_json("list", str(path))
    assert (row["trace_count"], row["span_count"]) == (1, 2)


def test_spans_without_ids_in_a_converted_file_are_counted(tmp_path):
    import polars as pl

    spans = pl.DataFrame(
        {
            "trace_id": ["ab" * 16, "cd" * 16, None],
            "span_id": ["1" * 16, None, "3" * 16],
            "start_time_unix_nano": [1_790_000_000_000_000_000] * 3,
            "end_time_unix_nano": [1_790_000_001_000_000_000] * 3,
            "session_id": ["s-1"] * 3,
        }
    )
    path = tmp_path / "ids.parquet"
    grouped_file(path, spans, [1, 2])
    assert converted_store.grouped_parquet(path, "ids", 100) is not None
    result = run("list", str(path), "--json")
    assert [row["span_count"] for row in json.loads(result.stdout)] == [1]
    assert "skipped 2 spans without a valid traceId/spanId" in result.stderr


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_converted_copies_keep_text_as_it_came(tmp_path, suffix):
    """CSV formula defusing is for spreadsheets: a converted copy must read back unchanged."""
    hostile = FIXTURES / "bad" / "terminal_and_formula_injection.otlp.jsonl"
    out = tmp_path / f"spans{suffix}"
    assert run("convert", str(hostile), "-o", str(out)).exit_code == 0
    (row,) = run_json("list", str(out))
    assert row["session_name"] == '=HYPERLINK("http://x")'
    assert row == run_json("list", str(hostile))[0]


def test_gzip_and_plain_give_identical_results(tmp_path):
    plain = tmp_path / "generated.jsonl"
    plain.write_bytes(gzip.decompress(GENERATED.read_bytes()))
    assert run_json("list", str(plain)) == run_json("list", str(GENERATED))


def test_convert_refuses_an_unknown_output_type(tmp_path):
    result = run("convert", str(REAL), "-o", str(tmp_path / "spans.xlsx"))
    assert result.exit_code == 2
    assert "unknown output type '.xlsx'" in result.stderr


def test_convert_reports_an_unwritable_output(tmp_path):
    result = run("convert", str(REAL), "-o", str(tmp_path / "missing-dir" / "spans.parquet"))
    assert result.exit_code == 1
    assert result.stderr.startswith("sessions: error: ")
    assert "cannot write" in result.stderr


def test_no_progress_line_when_stderr_is_not_a_terminal():
    result = run("list", str(GENERATED))
    assert "\r" not in result.stderr
    assert "reading" not in result.stderr


def test_progress_waits_a_second_then_redraws_in_place_and_erases(monkeypatch):
    stderr = io.StringIO()
    monkeypatch.setattr("sys.stderr", stderr)
    now = [100.0]
    progress = steps.Progress(total=2_000_000)
    progress.clock, progress.started = (lambda: now[0]), now[0]
    progress(500_000)  # at once: nothing
    assert stderr.getvalue() == ""
    now[0] += 1.5
    progress(1_000_000)
    assert stderr.getvalue() == "\r\x1b[Ksessions: reading 1.0 MB of 2.0 MB (50%), 1.5 s"
    progress.done()
    assert stderr.getvalue().endswith("\r\x1b[K")


def test_total_bytes_is_unknown_for_compressed_input(tmp_path):
    assert inputs.total_bytes([inputs.Source(str(GENERATED), GENERATED)]) is None
    assert inputs.total_bytes([inputs.Source(str(REAL), REAL)]) == REAL.stat().st_size
    assert inputs.total_bytes([inputs.Source("<stdin>")]) is None


def test_converted_parquet_keeps_the_span_columns(tmp_path):
    """The span record columns, repeated text dictionary encoded (categoricals to polars): as
    text, the same records as the JSONL copy."""
    import polars as pl

    from sessions_cli.read.schema import COMPACT_SCHEMA, SPAN_SCHEMA, expand

    out, lines = tmp_path / "spans.parquet", tmp_path / "spans.jsonl"
    assert run("convert", str(REAL), "-o", str(out)).exit_code == 0
    assert run("convert", str(REAL), "-o", str(lines)).exit_code == 0
    frame = pl.read_parquet(out)
    assert frame.schema == pl.Schema(COMPACT_SCHEMA)
    assert frame.schema["model"] == pl.Categorical
    assert frame.schema["status"] == pl.Enum
    assert frame.height == 34
    as_text = expand(frame)
    assert as_text.schema == pl.Schema(SPAN_SCHEMA)
    scalars = {c: t for c, t in SPAN_SCHEMA.items() if c != "metadata"}  # an object in JSONL
    assert as_text.drop("metadata").equals(pl.read_ndjson(lines, schema=scalars))
    assert json.loads(run("list", str(out), "--json").stdout)


@pytest.mark.parametrize("traces_on_disk", [True, False])
def test_spilled_store_gives_the_same_model_as_memory(tmp_path, monkeypatch, traces_on_disk):
    """Past its memory limit the store buckets spans by trace on disk, the model is built a
    group at a time, and trace rows wait by session, on disk past their own limit or in
    memory: every table must come out the same as from one frame in memory."""
    from sessions_cli.query import timeline
    from sessions_cli.store import spans as span_store
    from sessions_cli.store import traces as trace_store

    monkeypatch.setattr(span_store, "_FLUSH_ROWS", 250)  # several span files
    if traces_on_disk:
        monkeypatch.setattr(trace_store, "_MEMORY_BYTES", 0)
        monkeypatch.setattr(trace_store, "_FLUSH_ROWS", 40)  # several trace files
    buckets = []
    monkeypatch.setattr(model, "session_table", _recording(model.session_table, buckets))

    sources, _, report, reference = _generated_in_memory(tmp_path)
    store, _ = loading.read_store(
        sources,
        attributes.CHAINS,
        # several groups, several part files per bucket
        tuning=Tuning(chunk_bytes=50_000, memory_rows=100, group_rows=300),
    )
    with store:
        assert store.spilled
        spilled = model.build(store.groups(), load_spans=store.spans_of, spill_dir=store.directory)
        assert spilled.spans is None
        trace_files = list(store.directory.glob("traces-*.arrow"))
        assert len(trace_files) > 1 if traces_on_disk else not trace_files
        assert len(buckets) > 1  # sessions built a bucket of trace rows at a time
        assert len(list(store.directory.glob("spans-*.arrow"))) > 1
        assert store.conflicting_duplicates == report.conflicting_duplicates
        assert spilled.traces.to_dicts() == reference.traces.to_dicts()
        assert spilled.sessions.to_dicts() == reference.sessions.to_dicts()
        assert spilled.notices == reference.notices
        assert spilled.orphans.to_dicts() == reference.orphans.to_dicts()
        assert not spilled.orphans.is_empty()
        for session_id in reference.sessions.get_column("session_id").head(5):
            a = timeline.events(spilled, timeline.session(spilled, session_id), spans=True)
            b = timeline.events(reference, timeline.session(reference, session_id), spans=True)
            assert a.to_dicts() == b.to_dicts()
    assert not store.directory.exists()  # removed on close


def test_spans_read_once_stay_in_memory_then_go_to_disk(tmp_path, monkeypatch):
    """A command that reads spans only once (list, stats) lets the store keep spilled buckets
    in memory up to a bound, and send what comes after to disk: with some of each, every
    table must come out as from one frame in memory, and a bucket handed over is gone."""
    import polars as pl

    from sessions_cli.store import spans as span_store

    monkeypatch.setattr(span_store, "_FLUSH_ROWS", 250)  # several flushes
    sources, spans, report, reference = _generated_in_memory(tmp_path)
    # 2,008 spans flushed about 500 at a time, each flush a quarter of the size: two fit.
    some = int(spans.estimated_size() * 0.6)
    tuning = Tuning(chunk_bytes=50_000, memory_rows=100, group_rows=300, once_bytes=some)
    store, _ = loading.read_store(sources, attributes.CHAINS, tuning=tuning, spans_again=False)
    with store:
        assert len(store.in_memory) > 1  # in memory,
        assert len(store.parts) > 1  # then on disk
        groups = list(store.groups())
        assert len(groups) > 1
        built = model.build(groups, load_spans=store.spans_of, spill_dir=store.directory)
        assert all(not flush for flush in store.in_memory)  # every bucket let go
        assert store.conflicting_duplicates == report.conflicting_duplicates
        assert built.traces.to_dicts() == reference.traces.to_dicts()
        assert built.sessions.to_dicts() == reference.sessions.to_dicts()
        assert built.orphans.to_dicts() == reference.orphans.to_dicts()
        assert built.notices == reference.notices
        trace_id = reference.traces.get_column("trace_id")[0]
        with pytest.raises(AssertionError, match="read again"):
            store.spans_of([trace_id])
    # Without spans_again=False nothing stays: show and timeline read spans back.
    store, _ = loading.read_store(sources, attributes.CHAINS, tuning=tuning)
    with store:
        assert not store.in_memory
        assert store.parts
        assert store.spans_of([trace_id]).equals(spans.filter(pl.col("trace_id") == trace_id))


def _generated_in_memory(tmp_path):
    """The generated fixture as a plain file: its sources, and its spans, report and model
    read into one frame in memory, the reference a store's groups must match."""
    plain = tmp_path / "generated.jsonl"
    plain.write_bytes(gzip.decompress(GENERATED.read_bytes()))
    sources = [inputs.Source(str(plain), plain)]
    spans, report = loading.read_spans(
        sources, attributes.CHAINS, tuning=Tuning(chunk_bytes=50_000)
    )
    return sources, spans, report, model.build(spans)


def _recording(function, calls: list):
    def recorded(*args, **kwargs):
        calls.append(args)
        return function(*args, **kwargs)

    return recorded


def test_a_spilled_store_keeps_the_first_read_of_a_re_sent_span(monkeypatch):
    """The spill files of one bucket are read back in the order they were written, so a span
    re-sent with other content is still taken from its first reading, as in memory."""
    import polars as pl

    from sessions_cli.read import schema
    from sessions_cli.store import spans as span_store

    monkeypatch.setattr(span_store, "_FLUSH_ROWS", 1)  # a file per span added

    def frame(name: str, span_id: str = "00000000000000a1") -> pl.DataFrame:
        row = pl.DataFrame({"trace_id": ["0" * 31 + "1"], "span_id": [span_id], "name": [name]})
        return schema.compact(schema.conform(row))

    with span_store.SpanStore(memory_rows=0) as store:
        store.add(frame("first"))
        for i in range(12):  # files of other spans between the two readings
            store.add(frame("filler", f"{i:016x}"))
        store.add(frame("second"))
        (group,) = list(store.groups())
        assert store.spilled
        names = group.filter(pl.col("span_id") == "00000000000000a1").get_column("name")
        assert names.cast(pl.String).to_list() == ["first"]
        assert store.conflicting_duplicates == 1


def test_a_full_disk_while_spilling_is_a_clear_error(tmp_path, monkeypatch):
    import polars as pl

    from sessions_cli.errors import InputError

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pl.DataFrame, "write_ipc", full)
    plain = tmp_path / "generated.jsonl"
    plain.write_bytes(gzip.decompress(GENERATED.read_bytes()))
    with pytest.raises(InputError, match=r"cannot write temporary files in .*No space left"):
        loading.read_store(
            [inputs.Source(str(plain), plain)], attributes.CHAINS, tuning=Tuning(memory_rows=100)
        )


def test_convert_warns_of_spans_read_twice_with_different_content(tmp_path):
    """The duplicate count is known only once the store's groups are read: convert reads them
    while writing, and must still report it."""
    out = tmp_path / "spans.jsonl"
    result = run("convert", str(FIXTURES / "bad" / "conflicting_duplicate"), "-o", str(out))
    assert result.exit_code == 0
    assert "1 span was read more than once with different content" in result.stderr
    assert "wrote 1 span to" in result.stderr


def test_a_converted_file_that_turns_unreadable_while_read_is_a_clear_error(tmp_path):
    """Its groups are read while the model is built, after the check: a file replaced in
    between is an input error naming it, not a polars traceback."""
    from sessions_cli.errors import InputError

    _, out, _ = convert_spilled(tmp_path, ".parquet")
    store, _ = loading.read_store([inputs.Source("spans.parquet", out)], attributes.CHAINS)
    with store:
        assert isinstance(store, converted_store.GroupedParquet)
        out.write_bytes(b"PAR1 not any more")
        with pytest.raises(InputError, match=r"^spans\.parquet: unreadable Parquet"):
            list(store.groups())


def uppercase_trace(tmp_path, name: str, sizes) -> object:
    """Two spans of one trace whose id is uppercase hex (normalised to lowercase when read),
    one without a span id, as a Parquet file that claims `sizes` as its groups (None: no
    groups)."""
    import polars as pl

    spans = pl.DataFrame(
        {
            "trace_id": ["AB" * 16] * 3,
            "span_id": ["1" * 16, "2" * 16, None],
            "parent_span_id": [None, "1" * 16, None],
            "start_time_unix_nano": [1_790_000_000_000_000_000] * 3,
            "end_time_unix_nano": [1_790_000_001_000_000_000] * 3,
            "session_id": ["s-1"] * 3,
        }
    )
    path = tmp_path / f"{name}.parquet"
    if sizes is None:
        spans.write_parquet(path)
    else:
        grouped_file(path, spans, sizes)
    return path


def test_a_one_group_file_with_ids_to_normalise_shows_all_its_spans(tmp_path):
    """One group needs no id check, so its ids are not known to be normalised: a timeline
    must find the spans by their normalised id, not by the file's."""

    grouped, plain = uppercase_trace(tmp_path, "one", [3]), uppercase_trace(tmp_path, "plain", None)
    assert converted_store.grouped_parquet(grouped, "one", 100) is not None
    spans = run_json("timeline", "s-1", str(grouped), "--spans")
    assert spans == run_json("timeline", "s-1", str(plain), "--spans")
    assert len(spans) == 3  # the trace and its two spans


def test_strict_refuses_spans_without_ids_in_a_converted_file_as_in_any_file(tmp_path):
    grouped, plain = uppercase_trace(tmp_path, "one", [3]), uppercase_trace(tmp_path, "plain", None)
    for path in (grouped, plain):
        result = run("list", str(path), "--strict")
        assert result.exit_code == 1
        assert "--strict" in result.stderr
        assert "skipped 1 span without a valid traceId/spanId" in result.stderr


def test_an_interrupted_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    from sessions_cli.output import export

    out = tmp_path / "spans.jsonl"
    out.write_text("the previous export\n")

    def half_then_fail(groups, path, suffix, scratch):
        Path(path).write_text('{"half": ')
        raise KeyboardInterrupt

    monkeypatch.setattr(export, "_write", half_then_fail)
    with pytest.raises(KeyboardInterrupt):
        export.write(iter(()), str(out))
    assert out.read_text() == "the previous export\n"
    assert [p.name for p in tmp_path.iterdir()] == ["spans.jsonl"]


def test_a_written_file_replaces_the_target_whole_with_ordinary_permissions(tmp_path):
    from sessions_cli.output import export

    out = tmp_path / "spans.jsonl"
    out.write_text("old\n")
    assert export.write(iter(()), str(out)) == 0
    assert out.read_text() == ""
    assert out.stat().st_mode & 0o777 == 0o666 & ~_umask()
    assert [p.name for p in tmp_path.iterdir()] == ["spans.jsonl"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
