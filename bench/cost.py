"""What each stage costs at rest and per 1,000 replies: `make cost` writes docs/cost.md.

Everything derives from `infra.config.STAGES`, the prices in `llambda.prices`, and the
assumptions below, so the document changes when a stage's config does.
"""

from __future__ import annotations

import argparse
import math
import tempfile
from collections import Counter
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from bench.published import PICOLLM_LAMBDA_SPEED
from infra.config import HOURS_A_WEEK, STAGES, StageConfig
from llambda.prices import PRICES, Price

HOURS_PER_MONTH = 730
WEEKS_PER_MONTH = HOURS_PER_MONTH / HOURS_A_WEEK
TIMES = " \N{MULTIPLICATION SIGN} "  # how formulas read in the document
REPLY_TOKENS = 256
REPLIES = 1000

# A chat is admitted (counted and leased) in one conditional write, two on the first chat
# of a minute (the first fails its condition; failed conditional writes are metered too).
ADMIT_WRITES = 2


@dataclass(frozen=True)
class Footprint:
    """What a stage's stacks create that bills by the month, counted in its templates."""

    alarms: int
    secrets: int


def stack_footprints() -> dict[str, Footprint]:
    """Synthesize every stage (in process, no CLI, no Docker) and count what bills monthly."""
    from infra.quiet_jsii import silence_node_banners

    silence_node_banners()
    import aws_cdk as cdk

    from infra.build import build_app

    with tempfile.TemporaryDirectory(prefix="cost-synth-") as outdir:
        app = cdk.App(outdir=outdir)
        stages = build_app(app, context={}, nag=False)
        counts: dict[str, Footprint] = {}
        for name, stage in stages.items():
            types = Counter(
                resource["Type"]
                for stack in stage.synth().stacks
                for resource in stack.template.get("Resources", {}).values()
            )
            counts[name] = Footprint(
                alarms=types["AWS::CloudWatch::Alarm"],
                secrets=types["AWS::SecretsManager::Secret"],
            )
    return counts


@dataclass(frozen=True, kw_only=True)
class Assumptions:
    """How one reply uses the stack, beyond what the stage config fixes."""

    tokens_per_s: float = PICOLLM_LAMBDA_SPEED.tokens_per_s
    reply_tokens: int = REPLY_TOKENS
    # Pessimistic: every reply on its own connection, so each pays $connect/$disconnect.
    replies_per_connection: int = 1
    # The reader stays connected this long after the reply ends.
    idle_minutes_per_connection: float = 1.0
    # Router and authorizer: a few DynamoDB calls each.
    small_function_ms: float = 50.0
    # The conversation's item carries its history: assume it half full.
    history_fill: float = 0.5
    item_overhead_bytes: int = 300
    # Powertools JSON logs of the router and the inference function for one reply.
    log_kb_per_reply: float = 4.0
    # The image: runtime, picoLLM and a Phi-2-sized .pllm.
    image_gb: float = 2.0


class Item(StrEnum):
    """What a cost line counts: code finds a line by this, never by its display label."""

    PROVISIONED_CONCURRENCY = "provisioned_concurrency"
    SECRETS = "secrets"
    ALARMS = "alarms"
    IMAGE_STORAGE = "image_storage"
    INFERENCE_DURATION = "inference_duration"
    SMALL_FUNCTION_DURATION = "small_function_duration"
    LAMBDA_REQUESTS = "lambda_requests"
    WS_MESSAGES = "ws_messages"
    WS_CONNECTION_MINUTES = "ws_connection_minutes"
    DYNAMODB_READS = "dynamodb_reads"
    DYNAMODB_WRITES = "dynamodb_writes"
    LOGS = "logs"


@dataclass(frozen=True, kw_only=True)
class Line:
    """One cost line: `quantity` units at `price`, and how the quantity was counted."""

    item: Item
    what: str
    quantity: float
    price: Price
    formula: str

    @property
    def usd(self) -> float:
        return self.quantity * self.price.per_unit


def reply_seconds(a: Assumptions) -> float:
    return a.reply_tokens / a.tokens_per_s


def item_bytes(config: StageConfig, a: Assumptions) -> int:
    return int(config.history_max_chars * a.history_fill) + a.item_overhead_bytes


def provisioned_hours(config: StageConfig) -> tuple[float, str]:
    """Hours a month the stage keeps provisioned concurrency, and how they were counted:
    all month, or its scheduled hours a week (infra/constructs/spend_controls.py)."""
    schedule = config.provisioned_schedule
    if schedule is None:
        return HOURS_PER_MONTH, f"{HOURS_PER_MONTH} h"
    hours = config.provisioned_hours_a_week * WEEKS_PER_MONTH
    return hours, (
        f"{config.provisioned_hours_a_week} h a week ({config.provisioned_hours} "
        f"{schedule.days}) * {WEEKS_PER_MONTH:.2f} weeks"
    )


def at_rest(config: StageConfig, a: Assumptions, footprint: Footprint) -> list[Line]:
    """One month with no traffic."""
    gb = config.inference_memory_mb / 1024
    hours, counted = provisioned_hours(config)
    return [
        Line(
            item=Item.PROVISIONED_CONCURRENCY,
            what="Provisioned concurrency (inference)",
            quantity=config.provisioned_concurrency * gb * hours * 3600,
            price=PRICES["lambda_provisioned"],
            formula=f"{config.provisioned_concurrency} * {gb:g} GB * {counted} * 3600 s",
        ),
        Line(
            item=Item.SECRETS,
            what="Secrets Manager secrets",
            quantity=footprint.secrets,
            price=PRICES["secret_month"],
            formula=f"{footprint.secrets} in the stage's templates",
        ),
        Line(
            item=Item.ALARMS,
            what="CloudWatch alarms",
            quantity=footprint.alarms,
            price=PRICES["alarm_month"],
            formula=f"{footprint.alarms} in the stage's templates",
        ),
        Line(
            item=Item.IMAGE_STORAGE,
            what="Container image in ECR",
            quantity=a.image_gb,
            price=PRICES["ecr_storage"],
            formula=f"{a.image_gb:g} GB (assumed)",
        ),
    ]


def per_replies(config: StageConfig, a: Assumptions, *, provisioned: bool) -> list[Line]:
    """`REPLIES` replies of `reply_tokens` tokens, served on-demand or by a provisioned
    instance."""
    n = REPLIES
    t = reply_seconds(a)
    gb = config.inference_memory_mb / 1024
    small_gb = config.router_memory_mb / 1024
    rpc = a.replies_per_connection

    # Lambda invocations per reply: router for `chat`, the inference function, and per
    # connection the router's $connect and $disconnect plus the authorizer where required.
    per_connection_calls = 2 + (1 if config.require_token else 0)
    small_calls = 1 + per_connection_calls / rpc
    requests = 1 + small_calls

    # Deltas are coalesced to one post per `coalesce_ms` at most; at picoLLM's speed a
    # token takes longer than that, so each token is its own delta.
    deltas = min(a.reply_tokens, math.ceil(t * 1000 / config.coalesce_ms))
    # In: the chat message. Out: status `generating`, the deltas, `done`. Each is far
    # below 32 KB, so each is one metered message.
    messages = 1 + 1 + deltas + 1
    connection_minutes = t / 60 + a.idle_minutes_per_connection / rpc

    # DynamoDB: the conversation's item holds the history, and DynamoDB meters a read per
    # 4 KB and a write per 1 KB of the whole item, whatever the update touches.
    size = item_bytes(config, a)
    rru_per_read = math.ceil(size / 4096)
    wru_per_write = math.ceil(size / 1024)
    # The reply reads no history (the dispatch carries it): its reads are the watcher's.
    polls = math.floor(t * 1000 / config.stop_poll_ms)
    reads = polls
    # The watcher renews the lease every third of it (llambda/reply_watcher.py).
    renewals = math.floor(t / (config.lease_seconds / 3))
    # Per reply: admission (count and lease), renewals, and the last write that saves the
    # turn and frees the lease. Per connection: $connect's put and $disconnect's delete.
    writes_per_reply = ADMIT_WRITES + renewals + 1
    writes = writes_per_reply + 2 / rpc

    duration_price = PRICES["lambda_provisioned_duration" if provisioned else "lambda_duration"]
    served = "provisioned" if provisioned else "on-demand"
    return [
        Line(
            item=Item.INFERENCE_DURATION,
            what=f"Inference duration ({served})",
            quantity=n * t * gb,
            price=duration_price,
            formula=f"{n} * {t:.1f} s * {gb:g} GB",
        ),
        Line(
            item=Item.SMALL_FUNCTION_DURATION,
            what="Router and authorizer duration",
            quantity=n * small_calls * a.small_function_ms / 1000 * small_gb,
            price=PRICES["lambda_duration"],
            formula=(f"{n} * {small_calls:g} calls * {a.small_function_ms:g} ms * {small_gb:g} GB"),
        ),
        Line(
            item=Item.LAMBDA_REQUESTS,
            what="Lambda requests",
            quantity=n * requests,
            price=PRICES["lambda_requests"],
            formula=f"{n} * {requests:g} (1 inference + {small_calls:g} router/authorizer)",
        ),
        Line(
            item=Item.WS_MESSAGES,
            what="WebSocket messages",
            quantity=n * messages,
            price=PRICES["ws_messages"],
            formula=f"{n} * (chat + status + {deltas} deltas + done)",
        ),
        Line(
            item=Item.WS_CONNECTION_MINUTES,
            what="WebSocket connection minutes",
            quantity=n * connection_minutes,
            price=PRICES["ws_connection_minutes"],
            formula=f"{n} * ({t:.1f} s / 60 + {a.idle_minutes_per_connection:g} min idle)",
        ),
        Line(
            item=Item.DYNAMODB_READS,
            what="DynamoDB reads (stop polls)",
            quantity=n * reads * rru_per_read,
            price=PRICES["dynamodb_read"],
            formula=f"{n} * {polls} polls every {config.stop_poll_ms} ms * {rru_per_read} RRU",
        ),
        Line(
            item=Item.DYNAMODB_WRITES,
            what="DynamoDB writes",
            quantity=n * writes * wru_per_write,
            price=PRICES["dynamodb_write"],
            formula=(
                f"{n} * ({ADMIT_WRITES} admission + {renewals} renewals + save-and-release + "
                f"{2 / rpc:g} connect/disconnect) * {wru_per_write} WRU "
                f"({size / 1024:.1f} KB item)"
            ),
        ),
        Line(
            item=Item.LOGS,
            what="CloudWatch Logs",
            quantity=n * a.log_kb_per_reply / (1024 * 1024),
            price=PRICES["logs_ingest"],
            formula=f"{n} * {a.log_kb_per_reply:g} KB",
        ),
    ]


def total(lines: list[Line]) -> float:
    return sum(line.usd for line in lines)


def _usd(value: float) -> str:
    if value == 0:
        return "$0"
    if value >= 0.1:
        return f"${value:,.2f}"
    return f"${value:.4f}"


def _quantity(value: float) -> str:
    if value == int(value):
        return f"{value:,.0f}"
    if value >= 100:
        return f"{value:,.1f}"
    return f"{value:.4g}"


def _lines_table(lines: list[Line]) -> list[str]:
    rows = ["| item | quantity | price | cost |", "| --- | --- | --- | ---: |"]
    for line in lines:
        p = line.price
        rows.append(
            f"| {line.what} | {line.formula.replace(' * ', TIMES)} = "
            f"{_quantity(line.quantity)} {p.unit if line.quantity == 1 else p.units} "
            f"| {p.label()} | {_usd(line.usd)} |"
        )
    rows.append(f"| **total** | | | **{_usd(total(lines))}** |")
    return rows


def _shares(a: Assumptions) -> str:
    """Where a reply's money goes, in words (the first stage, on-demand)."""
    config = next(iter(STAGES.values()))
    lines = {line.item: line.usd for line in per_replies(config, a, provisioned=False)}
    whole = sum(lines.values())
    inference = lines[Item.INFERENCE_DURATION] / whole
    messages = lines[Item.WS_MESSAGES] / whole
    reads = lines[Item.DYNAMODB_READS]
    dynamodb = reads + lines[Item.DYNAMODB_WRITES]
    per_s = 1000 / config.stop_poll_ms
    return (
        f"Cost per reply scales with its length. Inference duration is {inference:.0%} of "
        f"it and WebSocket messages {messages:.1%}; DynamoDB is {dynamodb / whole:.1%}, "
        f"{reads / dynamodb:.0%} of that the stop polls ({per_s:g} consistent reads a second "
        "for the whole reply, each metered on the whole item, history included)."
    )


def summary_table(a: Assumptions, footprints: dict[str, Footprint]) -> list[str]:
    """Each stage's month at rest and its price per 1,000 replies: docs/cost.md's summary
    and the README's cost table."""
    out = [
        f"| stage | at rest, per month | per {REPLIES:,} replies of {a.reply_tokens} tokens, "
        "on-demand | … served by provisioned concurrency |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, config in STAGES.items():
        rest = total(at_rest(config, a, footprints[name]))
        od = total(per_replies(config, a, provisioned=False))
        pc = total(per_replies(config, a, provisioned=True))
        pc_cell = _usd(pc) if config.provisioned_concurrency else "n/a (none configured)"
        out.append(f"| {name} | {_usd(rest)} | {_usd(od)} | {pc_cell} |")
    return out


README_BEGIN = "<!-- cost table: generated by `make cost` from the stage configs and prices -->"
README_END = "<!-- end of cost table -->"


def readme_with_table(readme: str, a: Assumptions, footprints: dict[str, Footprint]) -> str:
    """The README with its cost table (between its markers) as the configs make it now."""
    before, begin, rest = readme.partition(README_BEGIN)
    _, end, after = rest.partition(README_END)
    if not begin or not end:
        raise ValueError(f"README.md has no {README_BEGIN!r} … {README_END!r} block")
    return "\n".join([before + begin, *summary_table(a, footprints), end + after])


def render(a: Assumptions | None = None, footprints: dict[str, Footprint] | None = None) -> str:
    """docs/cost.md."""
    a = a or Assumptions()
    footprints = footprints or stack_footprints()
    t = reply_seconds(a)
    out = [
        "# What it costs",
        "",
        "Generated by `make cost` (`bench/cost.py`) from the stage configs in "
        "`infra/config.py` and the prices in `lambda_image/llambda/prices.py`. us-east-1, "
        "x86, list prices, no free tier. Do not edit by hand.",
        "",
        "## Summary",
        "",
        *summary_table(a, footprints),
        "",
        f"A reply of {a.reply_tokens} tokens at {a.tokens_per_s:g} tokens/s takes "
        f"{a.reply_tokens} / {a.tokens_per_s:g} = {t:.1f} s. That speed is picoLLM's published "
        f"figure for Lambda: {PICOLLM_LAMBDA_SPEED.what} ({PICOLLM_LAMBDA_SPEED.source}, "
        f"checked {PICOLLM_LAMBDA_SPEED.checked_on}). {_shares(a)}",
        "",
        "A provisioned instance bills its concurrency price all month, and a cheaper duration "
        "price for the replies it serves; replies beyond its concurrency run on-demand. One "
        f"instance streams one reply at a time: at most 3600 / {t:.1f} = {3600 / t:.0f} "
        "replies an hour.",
        "",
    ]
    for name, config in STAGES.items():
        out += [
            f"## {name}",
            "",
            f"Inference {config.inference_memory_mb:,} MB, provisioned concurrency "
            f"{config.provisioned_concurrency}, router {config.router_memory_mb} MB, deltas "
            f"every ≥ {config.coalesce_ms} ms, stop polled every {config.stop_poll_ms} ms, "
            f"lease {config.lease_seconds} s, token required: "
            f"{'yes' if config.require_token else 'no'}.",
            "",
            "### At rest, per month",
            "",
            *_lines_table(at_rest(config, a, footprints[name])),
            "",
            "DynamoDB on-demand costs nothing at rest (a conversation is a few KB, kept "
            f"{config.conversation_ttl_days} days after its last use: millions fit in the 25 GB "
            "of free storage); CloudFront and S3 for the web client, log storage "
            "and Secrets Manager API calls (one secret read per cold start) are fractions of "
            "a cent.",
            "",
            f"### Per {REPLIES:,} replies, on-demand",
            "",
            *_lines_table(per_replies(config, a, provisioned=False)),
            "",
        ]
        if config.provisioned_concurrency:
            out += [
                f"### Per {REPLIES:,} replies, served by provisioned concurrency",
                "",
                *_lines_table(per_replies(config, a, provisioned=True)),
                "",
            ]
    out += [
        "## Assumptions",
        "",
        "| assumption | value |",
        "| --- | --- |",
        f"| generation speed | {a.tokens_per_s:g} tokens/s (published, see above) |",
        f"| reply length | {a.reply_tokens} tokens |",
        f"| replies per connection | {a.replies_per_connection} (each pays $connect and "
        "$disconnect: pessimistic) |",
        f"| reader connected after the reply | {a.idle_minutes_per_connection:g} min |",
        f"| router / authorizer run time | {a.small_function_ms:g} ms each |",
        f"| conversation item | history {a.history_fill:.0%} of the stage's cap + "
        f"{a.item_overhead_bytes} bytes |",
        "| stop polls | strongly consistent GetItem, whole item metered |",
        "| lease renewals | every third of the lease (as the runtime does) |",
        f"| logs per reply | {a.log_kb_per_reply:g} KB |",
        f"| image size | {a.image_gb:g} GB |",
        "",
        "## Prices",
        "",
        "| price | us-east-1 | source | checked |",
        "| --- | --- | --- | --- |",
    ]
    for p in PRICES.values():
        out.append(f"| {p.what} | {p.label()} | {p.source} | {p.checked_on} |")
    out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/cost.md"))
    parser.add_argument("--readme", type=Path, default=Path("README.md"))
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    a, footprints = Assumptions(), stack_footprints()
    args.out.write_text(render(a, footprints), encoding="utf-8")
    print(f"wrote {args.out}")
    if args.readme.is_file():
        readme = args.readme.read_text(encoding="utf-8")
        args.readme.write_text(readme_with_table(readme, a, footprints), encoding="utf-8")
        print(f"wrote the cost table in {args.readme}")
    for name, config in STAGES.items():
        rest = total(at_rest(config, a, footprints[name]))
        replies = total(per_replies(config, a, provisioned=False))
        print(f"{name}: {_usd(rest)} a month at rest + {_usd(replies)} per {REPLIES:,} replies")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
