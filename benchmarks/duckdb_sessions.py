"""The same per-session aggregate in DuckDB, written as well as we could, for the benchmark.

It does what `sessions list` must do on the generated exports: unnest OTLP JSON lines, take the
session id from the root (else any span of the trace), dedupe re-sent spans, count usage only on
the deepest spans carrying it (a recursive walk up from every usage span), and total per session:
traces, spans, tokens, cost from the attribute, start, end. It does less than `sessions`: no
price table, no other attribute chains, no tags or metadata, no malformed-line recovery.

`--plain` runs the query the issue names as the bar instead: the same columns, tokens and
cost summed on every span that carries them, two GROUP BYs (trace, then session), with no
de-duplication and no walk for the deepest usage. Its totals differ where wrappers repeat
their children's usage; its session and span counts are the same on generated exports.

    python benchmarks/duckdb_sessions.py FILE [--plain] [--threads N]   # sessions, seconds
"""

from __future__ import annotations

import argparse
import time

import duckdb

VALUE = "STRUCT(stringValue VARCHAR, intValue VARCHAR, doubleValue DOUBLE)"
ATTRS = f"STRUCT(key VARCHAR, value {VALUE})[]"
SPAN = (
    "STRUCT(traceId VARCHAR, spanId VARCHAR, parentSpanId VARCHAR, name VARCHAR, "
    f"startTimeUnixNano VARCHAR, endTimeUnixNano VARCHAR, attributes {ATTRS}, "
    "status STRUCT(code INTEGER))"
)
COLUMNS = "{resourceSpans: 'STRUCT(scopeSpans STRUCT(spans " + SPAN + "[])[])[]'}"


def attr(key: str, field: str = "stringValue") -> str:
    return f"list_filter(span.attributes, lambda a: a.key = '{key}')[1].value.{field}"


def tokens(*keys: str) -> str:
    return "coalesce(" + ", ".join(attr(k, "intValue") for k in keys) + ")"


TOKENS_IN = tokens("gen_ai.usage.input_tokens", "ai.usage.promptTokens")
TOKENS_OUT = tokens("gen_ai.usage.output_tokens", "ai.usage.completionTokens")


def spans_of(path: str) -> str:
    return f"""spans AS (
        SELECT unnest(s.spans) AS span
        FROM (SELECT unnest(r.scopeSpans) AS s
              FROM (SELECT unnest(resourceSpans) AS r
                    FROM read_ndjson('{path}', columns = {COLUMNS},
                                     maximum_object_size = 1073741824)))
    )"""


def plain_query(path: str) -> str:
    return f"""
    WITH {spans_of(path)},
    traces AS (
        SELECT span.traceId AS trace_id,
               coalesce(any_value({attr("agentmark.session_id")})
                            FILTER (WHERE coalesce(span.parentSpanId, '') = ''),
                        any_value({attr("agentmark.session_id")})) AS session_id,
               min(CAST(span.startTimeUnixNano AS BIGINT)) AS start_ns,
               max(CAST(span.endTimeUnixNano AS BIGINT)) AS end_ns,
               count(*) AS spans,
               sum(CAST({TOKENS_IN} AS BIGINT)) AS input_tokens,
               sum(CAST({TOKENS_OUT} AS BIGINT)) AS output_tokens,
               sum({attr("agentmark.usage.cost_usd", "doubleValue")}) AS cost_usd
        FROM spans GROUP BY span.traceId
    )
    SELECT session_id, count(*) AS trace_count, sum(spans) AS span_count,
           min(start_ns) AS start_ns, max(end_ns) AS end_ns,
           sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
           sum(cost_usd) AS cost_usd
    FROM traces WHERE session_id IS NOT NULL GROUP BY session_id
    """


def query(path: str) -> str:
    tokens_in, tokens_out = TOKENS_IN, TOKENS_OUT
    return f"""
    WITH RECURSIVE {spans_of(path)},
    flat AS (
        SELECT DISTINCT ON (trace_id, span_id) * FROM (
            SELECT span.traceId AS trace_id, span.spanId AS span_id,
                   nullif(span.parentSpanId, '') AS parent_id,
                   CAST(span.startTimeUnixNano AS BIGINT) AS start_ns,
                   CAST(span.endTimeUnixNano AS BIGINT) AS end_ns,
                   {attr("agentmark.session_id")} AS session_id,
                   CAST({tokens_in} AS BIGINT) AS input_tokens,
                   CAST({tokens_out} AS BIGINT) AS output_tokens,
                   {attr("agentmark.usage.cost_usd", "doubleValue")} AS cost_usd
            FROM spans)
    ),
    usage AS (
        SELECT trace_id, span_id, parent_id FROM flat
        WHERE input_tokens IS NOT NULL OR output_tokens IS NOT NULL OR cost_usd IS NOT NULL
    ),
    ancestors(trace_id, span_id) AS (
        SELECT DISTINCT trace_id, parent_id FROM usage WHERE parent_id IS NOT NULL
        UNION
        SELECT f.trace_id, f.parent_id FROM ancestors a
        JOIN flat f ON f.trace_id = a.trace_id AND f.span_id = a.span_id
        WHERE f.parent_id IS NOT NULL
    ),
    counted AS (
        SELECT f.*, (f.input_tokens IS NOT NULL OR f.output_tokens IS NOT NULL
                     OR f.cost_usd IS NOT NULL) AND a.span_id IS NULL AS counts
        FROM flat f LEFT JOIN (SELECT DISTINCT * FROM ancestors) a
          ON f.trace_id = a.trace_id AND f.span_id = a.span_id
    ),
    traces AS (
        SELECT trace_id,
               coalesce(any_value(session_id) FILTER (WHERE parent_id IS NULL),
                        arg_min(session_id, start_ns) FILTER (WHERE session_id IS NOT NULL))
                   AS session_id,
               min(start_ns) AS start_ns, max(end_ns) AS end_ns, count(*) AS spans,
               sum(input_tokens) FILTER (WHERE counts) AS input_tokens,
               sum(output_tokens) FILTER (WHERE counts) AS output_tokens,
               sum(cost_usd) FILTER (WHERE counts) AS cost_usd
        FROM counted GROUP BY trace_id
    )
    SELECT session_id, count(*) AS trace_count, sum(spans) AS span_count,
           min(start_ns) AS start_ns, max(end_ns) AS end_ns,
           sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
           sum(cost_usd) AS cost_usd
    FROM traces WHERE session_id IS NOT NULL GROUP BY session_id
    """


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("path")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--plain", action="store_true", help="the plain query (see above)")
    args = parser.parse_args()
    con = duckdb.connect()
    if args.threads:
        con.execute(f"SET threads = {args.threads}")
    started = time.perf_counter()
    rows = con.execute((plain_query if args.plain else query)(args.path)).fetchall()
    elapsed = time.perf_counter() - started
    print(f"{len(rows)} sessions, {sum(r[2] for r in rows)} spans, {elapsed:.2f} s")


if __name__ == "__main__":
    main()
