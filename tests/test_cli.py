"""`sessions list` as users run it: every filter, sort and format; stdout, stderr, exit code."""

from __future__ import annotations

import csv
import io
import json

import pytest

from sessions_cli import __version__
from tests.conftest import GENERATED, REAL, run, run_json
from tests.otlp_builder import document, lines, span

DAY_MS = 86_400_000


@pytest.fixture
def three(tmp_path):
    """Three sessions on consecutive days (2026-09-21..23 UTC) with distinct figures."""
    path = tmp_path / "three.jsonl"
    path.write_text(
        lines(
            document(
                span(
                    "t1",
                    "1",
                    start_ms=0,
                    end_ms=1000,
                    session__id="sess-alpha",
                    agentmark__session_name="Alpha Chat",
                    agentmark__user_id="ann",
                    agentmark__tags="prod",
                    agentmark__metadata__plan="pro",
                    gen_ai__request__model="m-small",
                    gen_ai__usage__input_tokens=100,
                    gen_ai__usage__output_tokens=10,
                    agentmark__usage__cost_usd=0.10,
                )
            ),
            document(
                span(
                    "t2",
                    "2",
                    start_ms=DAY_MS,
                    end_ms=DAY_MS + 5000,
                    session__id="sess-beta",
                    agentmark__user_id="ben",
                    agentmark__tags="dev",
                    gen_ai__request__model="m-large",
                    gen_ai__usage__input_tokens=5000,
                    gen_ai__usage__output_tokens=500,
                    agentmark__usage__cost_usd=2.50,
                ),
                span(
                    "t3",
                    "3",
                    start_ms=DAY_MS + 9000,
                    end_ms=DAY_MS + 9500,
                    session__id="sess-beta",
                    error=True,
                ),
            ),
            document(
                span(
                    "t4",
                    "4",
                    start_ms=2 * DAY_MS,
                    end_ms=2 * DAY_MS + 200,
                    session__id="sess-gamma",
                    agentmark__session_name="gamma batch",
                    agentmark__user_id="ann",
                    agentmark__tags="prod",
                    agentmark__metadata__plan="free",
                    gen_ai__request__model="m-small",
                    gen_ai__usage__input_tokens=1000,
                    gen_ai__usage__output_tokens=100,
                    agentmark__usage__cost_usd=0.40,
                )
            ),
        )
    )
    return str(path)


def ids(*args):
    return [row["session_id"] for row in run_json("list", *args)]


def test_default_order_is_newest_first(three):
    assert ids(three) == ["sess-gamma", "sess-beta", "sess-alpha"]


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("start", ["sess-gamma", "sess-beta", "sess-alpha"]),
        ("end", ["sess-gamma", "sess-beta", "sess-alpha"]),
        ("cost", ["sess-beta", "sess-gamma", "sess-alpha"]),
        ("tokens", ["sess-beta", "sess-gamma", "sess-alpha"]),
        ("duration", ["sess-beta", "sess-alpha", "sess-gamma"]),
        ("traces", ["sess-beta", "sess-alpha", "sess-gamma"]),
        ("spans", ["sess-beta", "sess-alpha", "sess-gamma"]),
        ("errors", ["sess-beta", "sess-alpha", "sess-gamma"]),
        # sess-beta has no name attribute: it takes its first trace's, the builder's "span"
        ("name", ["sess-beta", "sess-gamma", "sess-alpha"]),
        ("user", ["sess-beta", "sess-alpha", "sess-gamma"]),
    ],
)
def test_sort_keys(three, sort, expected):
    assert ids(three, "--sort", sort) == expected


def test_ascending_and_limit(three):
    assert ids(three, "--sort", "cost", "--asc") == ["sess-alpha", "sess-gamma", "sess-beta"]
    assert ids(three, "--sort", "cost", "--limit", "1") == ["sess-beta"]
    assert ids(three, "--limit", "0") == []


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--since", "2026-09-22"], ["sess-gamma", "sess-beta"]),
        (["--until", "2026-09-22T00:00:00Z"], ["sess-alpha"]),
        # beta is active 14:13:20-14:13:29.5 on 2026-09-22: a window inside it matches
        (
            ["--since", "2026-09-22T16:13:25+02:00", "--until", "2026-09-22T14:13:26Z"],
            ["sess-beta"],
        ),
        (["--user", "ann"], ["sess-gamma", "sess-alpha"]),
        (["--user", "ben", "--user", "nobody"], ["sess-beta"]),
        (["--search", "ALPHA"], ["sess-alpha"]),  # the name, case-insensitive
        (["--search", "gam"], ["sess-gamma"]),  # the id
        (["--tag", "prod"], ["sess-gamma", "sess-alpha"]),
        (["--tag", "prod", "--tag", "dev"], []),
        (["--meta", "plan=pro"], ["sess-alpha"]),
        (["--model", "m-large"], ["sess-beta"]),
        (["--min-cost", "0.40"], ["sess-gamma", "sess-beta"]),
        (["--max-cost", "0.40"], ["sess-gamma", "sess-alpha"]),
        (["--min-tokens", "1100"], ["sess-gamma", "sess-beta"]),
        (["--min-traces", "2"], ["sess-beta"]),
        (["--errors"], ["sess-beta"]),
    ],
)
def test_filters(three, args, expected):
    assert ids(three, *args) == expected


def test_relative_since_is_counted_back_from_now(three):
    assert ids(three, "--since", "30m") == []  # the fixture is from 2026-09
    assert len(ids(three, "--since", "3650d")) == 3


def test_filter_matching_nothing_is_empty_with_a_note(three):
    result = run("list", three, "--user", "nobody")
    assert (result.exit_code, result.stdout) == (0, "")
    assert result.stderr == "sessions: no sessions match\n"


def test_json_is_contract_shaped(three):
    row = run_json("list", three, "--search", "alpha")[0]
    assert list(row) == [
        "session_id",
        "session_name",
        "user_id",
        "users",
        "start",
        "end",
        "start_unix_ms",
        "end_unix_ms",
        "duration_ms",
        "trace_count",
        "span_count",
        "llm_call_count",
        "input_tokens",
        "output_tokens",
        "total_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "reasoning_tokens",
        "cost_usd",
        "cost_source",
        "unpriced_call_count",
        "error_count",
        "failed_trace_count",
        "models",
        "tags",
        "metadata",
        "session_name_source",
    ]
    assert row["session_name_source"] == "attribute"
    assert row["start"] == "2026-09-21T14:13:20.000000000Z"
    assert row["end"] == "2026-09-21T14:13:21.000000000Z"
    assert (row["duration_ms"], row["cost_usd"], row["cost_source"]) == (1000.0, 0.1, "attribute")
    assert (row["tags"], row["metadata"]) == (["prod"], {"plan": "pro"})


def test_jsonl_csv_tsv_markdown_carry_the_same_rows(three):
    as_json = run_json("list", three)
    jsonl = [
        json.loads(line) for line in run("list", three, "--format", "jsonl").stdout.splitlines()
    ]
    assert jsonl == as_json
    for fmt, delimiter in (("csv", ","), ("tsv", "\t")):
        result = run("list", three, "--format", fmt)
        rows = list(csv.DictReader(io.StringIO(result.stdout), delimiter=delimiter))
        assert [r["session_id"] for r in rows] == [r["session_id"] for r in as_json]
        assert [float(r["cost_usd"]) for r in rows] == [r["cost_usd"] for r in as_json]
        assert json.loads(rows[2]["metadata"]) == {"plan": "pro"}
    markdown = run("list", three, "--format", "markdown").stdout.splitlines()
    assert markdown[0].startswith("| session_id ")
    assert markdown[1].startswith("|---")
    assert len(markdown) == 2 + 3


def test_csv_shortcut_and_columns(three):
    result = run("list", three, "--csv", "--columns", "session_id,cost_usd")
    assert result.stdout.splitlines() == [
        "session_id,cost_usd",
        "sess-gamma,0.4",
        "sess-beta,2.5",
        "sess-alpha,0.1",
    ]


def test_table_is_humanised_and_fits_the_terminal(three):
    result = run("list", three, env={"COLUMNS": "90"})
    rows = result.stdout.splitlines()
    assert all(len(line) <= 90 for line in rows), result.stdout
    assert "$2.50" in result.stdout
    assert "5,500" in result.stdout
    assert "…" in result.stdout  # names were cut to fit


def test_narrow_terminal_never_cuts_numbers_or_times(three):
    result = run("list", three, env={"COLUMNS": "40"})
    assert "2026-09-22 14:13Z" in result.stdout
    assert "$2.50" in result.stdout


def test_table_time_zone(three):
    utc = run("list", three, "--columns", "session_id,start", "--search", "alpha").stdout
    paris = run(
        "list", three, "--columns", "session_id,start", "--search", "alpha", "--tz", "Europe/Paris"
    ).stdout
    assert "2026-09-21 14:13Z" in utc
    assert "2026-09-21 16:13" in paris


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "not a date"], "cannot read 'not a date' as a time"),
        (["--columns", "session_id,nope"], "unknown field 'nope'"),
        (["--format", "xml"], "'xml' is not one of"),
        (["--tz", "Mars/Olympus"], "unknown time zone"),
        (["--meta", "novalue"], "expected KEY=VALUE"),
        (["--limit", "-1"], "-1 is not in the range"),
        (["--sort", "colour"], "'colour' is not one of"),
    ],
)
def test_usage_errors_exit_2(three, args, message):
    result = run("list", three, *args)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert message in result.stderr


def test_unknown_option_fails_with_a_hint(three):
    result = run("list", three, "--jsn")
    assert result.exit_code == 2
    assert "No such option '--jsn'" in result.stderr
    assert "'--json'" in result.stderr  # the hint
    assert result.stderr.startswith("Usage: sessions list")


def test_bad_price_file_is_a_usage_error(tmp_path, three):
    bad = tmp_path / "prices.json"
    bad.write_text('{"m": {"input_per_mtok": "cheap"}}')
    result = run("list", three, "--prices", str(bad))
    assert result.exit_code == 2
    assert "Invalid value for '--prices'" in result.stderr
    assert "entry 'm' needs input_per_mtok/output_per_mtok as numbers" in result.stderr


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('{"m": {"input_per_mtok": NaN}}', "entry 'm' needs"),
        ('{"m": {"output_per_mtok": Infinity}}', "entry 'm' needs"),
        ('{"m": {"input_per_mtok": 1e300}}', "entry 'm' needs"),
        ('{"m": {"input_per_mtok": -1}}', "entry 'm' needs"),
        ('{"m": {"input_per_mtok": true}}', "entry 'm' needs"),
        ("[" * 5000 + "]" * 5000, "nested too deeply"),
        ("[]", "expected an object of model -> prices"),
    ],
)
def test_hostile_price_files_are_usage_errors_naming_the_file(tmp_path, three, text, reason):
    bad = tmp_path / "prices.json"
    bad.write_text(text)
    result = run("list", three, "--prices", str(bad))
    assert result.exit_code == 2
    assert f"{bad}: " in result.stderr
    assert reason in result.stderr
    assert "internal error" not in result.stderr


def test_a_price_given_as_numeric_text_is_still_read(tmp_path, three):
    prices = tmp_path / "prices.json"
    prices.write_text('{"gpt-4o": {"input_per_mtok": "0", "output_per_mtok": "0"}}')
    assert run("list", three, "--prices", str(prices)).exit_code == 0


def test_usage_errors_from_checked_values_share_clicks_format(three):
    for args in (["stats", three, "--by", "nope"], ["list", three, "--since", "100000000d"]):
        result = run(*args)
        assert result.exit_code == 2, args
        assert result.stderr.startswith(f"Usage: sessions {args[0]}"), result.stderr
        assert "Error: Invalid value for" in result.stderr


def test_price_file_prices_unknown_models(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text(
        lines(
            document(
                span(
                    "t",
                    "1",
                    session__id="s",
                    gen_ai__request__model="mine",
                    gen_ai__usage__input_tokens=2_000_000,
                )
            )
        )
    )
    prices = tmp_path / "prices.json"
    prices.write_text('{"mine": {"input_per_mtok": 1.5, "output_per_mtok": 3}}')
    [row] = run_json("list", str(path), "--prices", str(prices))
    assert (row["cost_usd"], row["cost_source"]) == (3.0, "price_table")
    [unpriced] = run_json("list", str(path))
    assert (unpriced["cost_usd"], unpriced["unpriced_call_count"]) == (None, 1)


def test_version_and_help_everywhere():
    assert run("--version").stdout.startswith(f"sessions {__version__} (price table: genai-prices ")
    for args in (["-h"], ["--help"], ["list", "-h"]):
        result = run(*args)
        assert result.exit_code == 0
        assert "Usage:" in result.stdout
    assert "--orphans" in run("list", "--help").stdout


def test_every_option_has_help_text():
    from sessions_cli.cli.main import cli

    for command in cli.commands.values():
        for param in command.params:
            if param.param_type_name == "option":
                assert param.help, f"{command.name} {param.name} has no help"


def test_orphans_list_traces(three, tmp_path):
    path = tmp_path / "o.jsonl"
    path.write_text(lines(document(span("t9", "9", name="cron", agentmark__user_id="ann"))))
    rows = run_json("list", "--orphans", str(path), three)
    assert [(r["trace_name"], r["user_id"]) for r in rows] == [("cron", "ann")]
    assert run_json("list", "--orphans", str(REAL), "--search", "health")[0]["trace_name"] == (
        "healthcheck"
    )


@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv", "tsv"])
def test_machine_formats_written_in_slices_are_the_same_text(fmt, monkeypatch):
    """Big outputs are rendered a slice of rows at a time; the text must not show it."""
    from sessions_cli.output import render

    args = ("list", str(GENERATED), "--format", fmt, "--sort", "cost")
    whole = run(*args)
    assert whole.exit_code == 0
    for size in (1, 7, 10**6):
        monkeypatch.setattr(render, "_SLICE", size)
        assert run(*args).stdout == whole.stdout, size
    if fmt == "json":
        assert len(json.loads(whole.stdout)) > 7
        # Laid out exactly as json.dumps(indent=2) lays out the whole array.
        indented = json.dumps(json.loads(whole.stdout), ensure_ascii=False, indent=2) + "\n"
        assert whole.stdout == indented
