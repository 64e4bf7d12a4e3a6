"""The attribute-key precedence tables of contract §2, as data, in one place.

For each field, the first key present on a span wins; span attributes override resource
attributes with the same key.
"""

from __future__ import annotations

SESSION_ID = (
    "agentmark.session_id",
    "agentmark.metadata.session_id",
    "session.id",
    "gen_ai.conversation.id",
    "langfuse.session.id",
    "ai.telemetry.metadata.sessionId",
    "ai.telemetry.metadata.session_id",
    "traceloop.association.properties.session_id",
    "langsmith.metadata.session_id",
    "langsmith.metadata.thread_id",
    "langsmith.metadata.conversation_id",
)

# Attributes whose value is a JSON object, read as if each of its keys were an attribute of
# its own, `<attribute>.<key>`: OpenInference's and pydantic-ai's `metadata`, Langfuse's usage
# and cost details.
JSON_METADATA_PREFIX = "metadata."
LANGFUSE_USAGE = "langfuse.observation.usage_details"
LANGFUSE_COST = "langfuse.observation.cost_details"
JSON_OBJECTS = ("metadata", LANGFUSE_USAGE, LANGFUSE_COST)

CHAINS: dict[str, tuple[str, ...]] = {
    "session_id": SESSION_ID,
    "session_name": (
        "agentmark.session_name",
        "agentmark.metadata.session_name",
        "ai.telemetry.metadata.sessionName",
        "langfuse.trace.name",
    ),
    "user_id": (
        "agentmark.user_id",
        "agentmark.metadata.user_id",
        "user.id",
        "langfuse.user.id",
        "enduser.id",
        "ai.telemetry.metadata.userId",
        "ai.telemetry.metadata.user_id",
        "traceloop.association.properties.user_id",
        "langsmith.metadata.user_id",
        JSON_METADATA_PREFIX + "user_id",
    ),
    "trace_name": ("agentmark.trace_name",),
    "model": (
        "gen_ai.response.model",
        "gen_ai.request.model",
        "ai.model.id",
        "llm.model_name",
        "langfuse.observation.model.name",
    ),
    # Not in the contract's table: which provider served the call, a hint for the price table.
    "provider": ("gen_ai.provider.name", "gen_ai.system", "llm.provider", "ai.model.provider"),
    # Used to recognise model-call spans that failed before reporting usage (contract §3).
    "operation": ("gen_ai.operation.name", "openinference.span.kind", "langfuse.observation.type"),
    "input_tokens": (
        "gen_ai.usage.input_tokens",
        "gen_ai.usage.prompt_tokens",
        "ai.usage.inputTokens",
        "ai.usage.promptTokens",
        "llm.token_count.prompt",
        LANGFUSE_USAGE + ".input",
        LANGFUSE_USAGE + ".prompt_tokens",
    ),
    "output_tokens": (
        "gen_ai.usage.output_tokens",
        "gen_ai.usage.completion_tokens",
        "ai.usage.outputTokens",
        "ai.usage.completionTokens",
        "llm.token_count.completion",
        LANGFUSE_USAGE + ".output",
        LANGFUSE_USAGE + ".completion_tokens",
    ),
    "total_tokens": (
        "gen_ai.usage.total_tokens",
        "ai.usage.totalTokens",
        "llm.token_count.total",
        "llm.usage.total_tokens",
        LANGFUSE_USAGE + ".total",
        LANGFUSE_USAGE + ".total_tokens",
    ),
    # Parts of the input and output counts above, not added to them.
    "cache_read_tokens": (
        "gen_ai.usage.cache_read.input_tokens",
        "gen_ai.usage.cache_read_input_tokens",
        "ai.usage.cachedInputTokens",
        "llm.token_count.prompt_details.cache_read",
    ),
    "cache_write_tokens": (
        "gen_ai.usage.cache_creation.input_tokens",
        "gen_ai.usage.cache_creation_input_tokens",
        "llm.token_count.prompt_details.cache_write",
    ),
    "reasoning_tokens": (
        "gen_ai.usage.reasoning.output_tokens",
        "ai.usage.reasoningTokens",
        "llm.token_count.completion_details.reasoning",
    ),
    "cost_usd": (
        "agentmark.usage.cost_usd",
        "gen_ai.usage.cost",
        "llm.cost.total",
        "operation.cost",
        LANGFUSE_COST + ".total",
    ),
}

# Tags: the first of these keys present (a JSON array string, a native array, or text
# separated by commas).
TAGS = ("agentmark.tags", "langfuse.trace.tags", "tag.tags")
# Metadata: every key under these prefixes (without the prefix), except those feeding a field
# above.
METADATA_PREFIXES = (
    "agentmark.metadata.",
    "ai.telemetry.metadata.",
    "traceloop.association.properties.",
    "langfuse.trace.metadata.",
    "langsmith.metadata.",
    JSON_METADATA_PREFIX,
)
METADATA_USED = frozenset(
    key for chain in CHAINS.values() for key in chain if key.startswith(METADATA_PREFIXES)
)

# Values of `operation` (lower-cased) that mark a model call; and span-name endings that do.
# ("generation": a Langfuse observation of type generation.)
MODEL_CALL_OPERATIONS = ("chat", "text_completion", "generate_content", "embeddings", "llm",
                         "generation")  # fmt: skip
MODEL_CALL_NAME_SUFFIXES = (".doGenerate", ".doStream")

# Session id values that mean "no session" (after trimming).
NO_SESSION_VALUES = ("", "null")


def chains(session_keys: tuple[str, ...] = ()) -> dict[str, tuple[str, ...]]:
    """The chains in force: `--session-key` replaces the session-id chain."""
    return {**CHAINS, "session_id": tuple(session_keys)} if session_keys else dict(CHAINS)
