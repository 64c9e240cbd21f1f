"""One frozen, typed configuration per stage.

This module imports nothing from CDK on purpose: `bench/` and the tests read the configs
without synthesizing. (The local twin reads none of this: it runs the synthesized stage.)
`app.py` is the only place that turns context into overrides (see `with_overrides`).
"""

from __future__ import annotations

import dataclasses
import re
import zoneinfo
from dataclasses import dataclass, field
from typing import Any, Literal

from llambda.contract import DEFAULTS, IMAGE_MODEL_DIR, METRICS_NAMESPACE

Engine = Literal["picollm", "llamacpp"]


class ConfigError(ValueError):
    """A setting that cannot deploy; the message names the key and the rule."""


# Where `make dev`, or a page served from web_client/ against a deployed stage
# (hosting=false), runs: Dev allows them by default, and a stage without a hosted page
# allows them as its page's origins.
LOCAL_PAGE_PORT = 8787
LOCAL_PAGE_ORIGINS = (f"http://localhost:{LOCAL_PAGE_PORT}", f"http://127.0.0.1:{LOCAL_PAGE_PORT}")
# Fields that are not settings: the stage's own name, and the name it is deployed as.
NOT_SETTINGS = ("stage_name", "deployment")


@dataclass(frozen=True)
class ProvisionedSchedule:
    """Provisioned concurrency from `start_hour`:00 to `stop_hour`:00 on `days`."""

    start_hour: int
    stop_hour: int
    days: str

    @property
    def hours_a_week(self) -> int:
        return (self.stop_hour - self.start_hour) * days_a_week(self.days)


HOURS_A_WEEK = 7 * 24
DAY_NAMES = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")


def days_a_week(days: str) -> int:
    """How many days a cron day-of-week field ("MON-FRI", "SAT,SUN", "*") names."""
    if days == "*":
        return 7
    count = 0
    for part in days.split(","):
        first, _, last = part.partition("-")
        count += DAY_NAMES.index(last or first) - DAY_NAMES.index(first) + 1
    return count


@dataclass(frozen=True, kw_only=True)
class StageConfig:
    """Everything that differs between stages or that a user may change per deploy."""

    stage_name: str
    # The name the stage is deployed as when it is not `stage_name` (the pipeline's
    # `Pipeline-Dev`): the runtime's metrics carry it as their `stage`, so two copies of
    # Dev in one account never add up in one graph or alarm. Set by LlambdaStage.
    deployment: str | None = None

    # Inference function (container image)
    engine: Engine = DEFAULTS.engine
    model_file: str = DEFAULTS.model_file
    inference_memory_mb: int = 10240
    inference_timeout_seconds: int = 900
    # The most replies at once. 0 means no reservation (the function shares the account's
    # unreserved pool): an account under 100 + N concurrent executions cannot reserve N.
    reserved_concurrency: int = 2
    # Instances kept initialized on the alias `live`; at most reserved_concurrency when set.
    provisioned_concurrency: int = 0
    # Provisioned concurrency only within these hours ("08-18": from 08:00 to 18:00) on
    # these days (cron day-of-week: MON-FRI, SAT,SUN, *) in this IANA time zone, none
    # outside them; "" keeps it all the time. spend_controls.py schedules it. With
    # provisionedConcurrency=0 there is none at all, and every cold start is paid by a reply.
    provisioned_hours: str = ""
    provisioned_days: str = "MON-FRI"
    provisioned_time_zone: str = "UTC"
    # Router function (zip): validates, updates the table, dispatches asynchronously
    router_memory_mb: int = 256
    router_timeout_seconds: int = 10
    # Async dispatch to the inference alias: no retries, and a short maximum event age so a
    # queued chat is dropped (and reported) rather than answered minutes late.
    dispatch_max_event_age_seconds: int = 60
    log_retention_days: int = 30

    # WebSocket API stage throttling
    throttle_rate_limit: float = 20.0
    throttle_burst_limit: int = 40

    # Caps on what one client may ask for
    max_prompt_chars: int = DEFAULTS.max_prompt_chars
    max_tokens_cap: int = DEFAULTS.max_tokens_cap
    default_max_tokens: int = DEFAULTS.default_max_tokens
    max_temperature: float = DEFAULTS.max_temperature
    max_stop_sequences: int = DEFAULTS.max_stop_sequences
    # Chats a minute per conversation
    messages_per_minute: int = DEFAULTS.messages_per_minute
    # Token budgets, in generated tokens (0: no cap), checked before a reply starts and
    # binding while it runs: per conversation, per client identity a UTC day (the hash of
    # its token or API key; of its source IP where it has none), and for the whole stage a
    # UTC day (both doors; the OpenAI-compatible one has no conversations).
    conversation_token_budget: int = DEFAULTS.conversation_token_budget
    client_tokens_per_day: int = DEFAULTS.client_tokens_per_day
    stage_tokens_per_day: int = DEFAULTS.stage_tokens_per_day
    # Conversation memory kept in the conversation's item, trimmed oldest turn first
    history_max_chars: int = DEFAULTS.history_max_chars
    # A conversation is deleted this long after its last use
    conversation_ttl_days: int = DEFAULTS.conversation_ttl_days

    # Streaming
    coalesce_ms: int = DEFAULTS.coalesce_ms
    stop_poll_ms: int = DEFAULTS.stop_poll_ms
    # A reply whose client went away goes on this long, waiting for a client to attach
    # (and polls for one every resume_poll_ms meanwhile, so a resume starts quickly).
    reply_grace_seconds: int = DEFAULTS.reply_grace_seconds
    resume_poll_ms: int = DEFAULTS.resume_poll_ms
    lease_seconds: int = DEFAULTS.lease_seconds

    # The chat page on CloudFront. A new account may not create CloudFront resources until
    # AWS verifies it; hosting=false deploys without the page, which then runs from
    # web_client/ on this machine against the stage's WebSocket (docs/deploy.md).
    hosting: bool = True

    # Access
    require_token: bool = DEFAULTS.require_token
    allowed_origins: tuple[str, ...] = DEFAULTS.allowed_origins

    # The OpenAI-compatible endpoint (docs/openai.md): a Function URL on the inference
    # alias, API keys required (Prod may not turn that off), browsers allowed only from
    # these origins (none: no CORS), and requests a minute per key.
    openai_endpoint: bool = True
    openai_require_key: bool = DEFAULTS.openai_require_key
    openai_allowed_origins: tuple[str, ...] = DEFAULTS.openai_allowed_origins
    openai_requests_per_minute: int = DEFAULTS.openai_requests_per_minute

    # Stateful resources
    retain_data: bool = False
    point_in_time_recovery: bool = False

    # Operations
    alarm_email: str | None = None

    # Free-form tags applied to every resource of the stage
    tags: tuple[tuple[str, str], ...] = field(default=())

    def __post_init__(self) -> None:
        problems = validation_problems(self)
        if problems:
            raise ConfigError(f"{self.stage_name}: " + "; ".join(problems))

    @property
    def provisioned_schedule(self) -> ProvisionedSchedule | None:
        """The hours provisioned concurrency runs in; None when it runs all the time (or
        the stage has none)."""
        if not self.provisioned_hours or not self.provisioned_concurrency:
            return None
        start, stop = (int(part) for part in self.provisioned_hours.split("-"))
        return ProvisionedSchedule(start, stop, self.provisioned_days)

    @property
    def provisioned_hours_a_week(self) -> int:
        """Hours a week the stage keeps its provisioned instances: all of them, its
        schedule's, or none."""
        if not self.provisioned_concurrency:
            return 0
        schedule = self.provisioned_schedule
        return HOURS_A_WEEK if schedule is None else schedule.hours_a_week

    @property
    def alias_provisioned_concurrency(self) -> int:
        """What the alias itself declares: the count, unless a schedule sets it."""
        return 0 if self.provisioned_schedule else self.provisioned_concurrency

    @property
    def model_path(self) -> str:
        """Absolute path of the model inside the image."""
        return f"{IMAGE_MODEL_DIR}/{self.model_file}"

    @property
    def metrics_stage(self) -> str:
        """The `stage` dimension of the runtime's metrics (and so of its alarms)."""
        return self.deployment or self.stage_name

    @property
    def page_origins(self) -> tuple[str, ...]:
        """Where this stage's page runs when it is not hosted: the local origins."""
        return () if self.hosting else LOCAL_PAGE_ORIGINS

    @property
    def is_prod(self) -> bool:
        return self.stage_name == "Prod"

    # The environment each function gets, as the stack sets it (and so the local twin,
    # which reads it from the synthesized template). Each function's settings class in
    # lambda_image/llambda/settings.py reads exactly these (tests/runtime/test_settings.py).
    def common_environment(self, *, service: str) -> dict[str, str]:
        return {
            "STAGE_NAME": self.metrics_stage,
            "POWERTOOLS_SERVICE_NAME": service,
            "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
            "POWERTOOLS_LOG_LEVEL": "INFO",
        }

    def router_environment(self, *, table_name: str, inference_function: str) -> dict[str, str]:
        """Router: validation caps, the table, and the inference alias to dispatch to."""
        return {
            **self.common_environment(service="router"),
            "TABLE_NAME": table_name,
            "INFERENCE_FUNCTION": inference_function,
            "MAX_PROMPT_CHARS": str(self.max_prompt_chars),
            "MAX_TOKENS_CAP": str(self.max_tokens_cap),
            "DEFAULT_MAX_TOKENS": str(self.default_max_tokens),
            "MAX_TEMPERATURE": str(self.max_temperature),
            "MAX_STOP_SEQUENCES": str(self.max_stop_sequences),
            "MESSAGES_PER_MINUTE": str(self.messages_per_minute),
            "LEASE_SECONDS": str(self.lease_seconds),
            "CONVERSATION_TTL_DAYS": str(self.conversation_ttl_days),
            "ALLOWED_ORIGINS": ",".join(self.allowed_origins),
            "CONVERSATION_TOKEN_BUDGET": str(self.conversation_token_budget),
            **self.daily_budget_environment(),
        }

    def daily_budget_environment(self) -> dict[str, str]:
        """The daily budgets both doors count (SpendSettings reads them)."""
        return {
            "CLIENT_TOKENS_PER_DAY": str(self.client_tokens_per_day),
            "STAGE_TOKENS_PER_DAY": str(self.stage_tokens_per_day),
        }

    def inference_environment(
        self, *, table_name: str, access_key_secret_arn: str | None
    ) -> dict[str, str]:
        """Inference: engine, model, streaming cadence and the AccessKey secret's ARN."""
        env = {
            **self.common_environment(service="inference"),
            "TABLE_NAME": table_name,
            "ENGINE": self.engine,
            "MODEL_PATH": self.model_path,
            "HISTORY_MAX_CHARS": str(self.history_max_chars),
            "COALESCE_MS": str(self.coalesce_ms),
            "STOP_POLL_MS": str(self.stop_poll_ms),
            "RESUME_POLL_MS": str(self.resume_poll_ms),
            "REPLY_GRACE_SECONDS": str(self.reply_grace_seconds),
            "LEASE_SECONDS": str(self.lease_seconds),
            "CONVERSATION_TTL_DAYS": str(self.conversation_ttl_days),
        }
        if access_key_secret_arn:
            env["ACCESS_KEY_SECRET_ARN"] = access_key_secret_arn
        return env

    def openai_environment(self) -> dict[str, str]:
        """Added to the inference function's when the OpenAI-compatible endpoint is on: its
        caps and daily budgets (the WebSocket door's), key rule and rate (OpenAISettings
        reads them)."""
        return {
            **self.daily_budget_environment(),
            "MAX_PROMPT_CHARS": str(self.max_prompt_chars),
            "MAX_TOKENS_CAP": str(self.max_tokens_cap),
            "DEFAULT_MAX_TOKENS": str(self.default_max_tokens),
            "MAX_TEMPERATURE": str(self.max_temperature),
            "MAX_STOP_SEQUENCES": str(self.max_stop_sequences),
            "OPENAI_REQUIRE_KEY": "true" if self.openai_require_key else "false",
            "OPENAI_ALLOWED_ORIGINS": ",".join(self.openai_allowed_origins),
            "OPENAI_REQUESTS_PER_MINUTE": str(self.openai_requests_per_minute),
        }

    def dispatch_failure_environment(self, *, table_name: str) -> dict[str, str]:
        """Dispatch failures (the alias's on-failure destination): the table, to free the lease."""
        return {
            **self.common_environment(service="dispatch_failure"),
            "TABLE_NAME": table_name,
        }

    def authorizer_environment(self, *, token_secret_arn: str) -> dict[str, str]:
        """$connect authorizer: the token secret and whether a token is required."""
        return {
            **self.common_environment(service="authorizer"),
            "TOKEN_SECRET_ARN": token_secret_arn,
            "REQUIRE_TOKEN": "true" if self.require_token else "false",
        }

    def with_overrides(self, overrides: dict[str, Any]) -> StageConfig:
        """A copy with `overrides` (camelCase context keys or snake_case names) applied.

        Values may be strings, as `cdk -c key=value` passes them; each is converted to the
        field's type, and an unknown key is an error rather than a silent no-op.
        """
        fields = {f.name: f for f in dataclasses.fields(self)}
        changes: dict[str, Any] = {}
        for key, raw in overrides.items():
            name = _snake(key)
            if name not in fields or name in NOT_SETTINGS:
                known = ", ".join(sorted(context_keys()))
                raise ConfigError(f"unknown config key {key!r}; known keys: {known}")
            changes[name] = _coerce(name, getattr(self, name), raw)
        return dataclasses.replace(self, **changes)


# Lambda's own bounds (docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html);
# a value outside them would pass synth and fail in CloudFormation minutes later.
MEMORY_MB = (128, 10240)
MAX_TIMEOUT_SECONDS = 900
ASYNC_EVENT_AGE_SECONDS = (60, 21600)
MODEL_SUFFIX = {"picollm": ".pllm", "llamacpp": ".gguf"}
# DynamoDB's item size limit, and what a conversation's item holds besides its turns and
# the running reply's prompt (ids, numbers, attribute names), with room to spare.
DYNAMODB_ITEM_BYTES = 400 * 1024
ITEM_OVERHEAD_BYTES = 4 * 1024
UTF8_MAX_BYTES_PER_CHAR = 4
BUDGET_SETTINGS = ("conversation_token_budget", "client_tokens_per_day", "stage_tokens_per_day")


def validation_problems(config: StageConfig) -> list[str]:
    """Every setting of `config` that could not deploy, each naming its key and the rule."""
    problems = []
    for name in ("inference_memory_mb", "router_memory_mb"):
        value = getattr(config, name)
        if not MEMORY_MB[0] <= value <= MEMORY_MB[1]:
            problems.append(
                f"{_camel(name)} is {value}; Lambda allows {MEMORY_MB[0]} to {MEMORY_MB[1]} MB"
            )
    for name in ("inference_timeout_seconds", "router_timeout_seconds"):
        value = getattr(config, name)
        if not 1 <= value <= MAX_TIMEOUT_SECONDS:
            problems.append(
                f"{_camel(name)} is {value}; Lambda allows 1 to {MAX_TIMEOUT_SECONDS} seconds"
            )
    for name in ("reserved_concurrency", "provisioned_concurrency"):
        if getattr(config, name) < 0:
            problems.append(f"{_camel(name)} is {getattr(config, name)}; it must be 0 or more")
    reserved, provisioned = config.reserved_concurrency, config.provisioned_concurrency
    if reserved > 0 and provisioned > reserved:
        problems.append(
            f"provisionedConcurrency ({provisioned}) must not exceed reservedConcurrency "
            f"({reserved}): Lambda provisions instances within the reservation "
            "(or set reservedConcurrency=0 for no reservation)"
        )
    age = config.dispatch_max_event_age_seconds
    if not ASYNC_EVENT_AGE_SECONDS[0] <= age <= ASYNC_EVENT_AGE_SECONDS[1]:
        low, high = ASYNC_EVENT_AGE_SECONDS
        problems.append(
            f"dispatchMaxEventAgeSeconds is {age}; Lambda allows {low} to {high} seconds"
        )
    item_bytes = (
        UTF8_MAX_BYTES_PER_CHAR * (config.history_max_chars + config.max_prompt_chars)
        + ITEM_OVERHEAD_BYTES
    )
    if item_bytes > DYNAMODB_ITEM_BYTES:
        problems.append(
            f"historyMaxChars + maxPromptChars is "
            f"{config.history_max_chars + config.max_prompt_chars} characters: up to "
            f"{item_bytes} bytes in a conversation's item, over DynamoDB's "
            f"{DYNAMODB_ITEM_BYTES}"
        )
    problems += schedule_problems(config)
    for name in BUDGET_SETTINGS:
        value = getattr(config, name)
        if value != 0 and value < config.default_max_tokens:
            problems.append(
                f"{_camel(name)} is {value}; it must be 0 (no cap) or at least "
                f"defaultMaxTokens ({config.default_max_tokens}), one reply's worth"
            )
    for name in ("conversation_ttl_days", "reply_grace_seconds", "resume_poll_ms"):
        if getattr(config, name) < 1:
            problems.append(f"{_camel(name)} is {getattr(config, name)}; it must be 1 or more")
    problems += openai_problems(config)
    suffix = MODEL_SUFFIX.get(config.engine)
    if suffix is None:
        problems.append(f"engine must be picollm or llamacpp, not {config.engine!r}")
    elif not config.model_file.endswith(suffix) or "/" in config.model_file:
        problems.append(
            f"modelFile {config.model_file!r} must be a {suffix} file name in "
            f"lambda_image/models/ for engine={config.engine}"
        )
    return problems


HOURS = re.compile(r"([01]?[0-9]|2[0-3])-([01]?[0-9]|2[0-3])")
DAYS = re.compile(
    r"\*|(SUN|MON|TUE|WED|THU|FRI|SAT)(-(SUN|MON|TUE|WED|THU|FRI|SAT))?"
    r"(,(SUN|MON|TUE|WED|THU|FRI|SAT)(-(SUN|MON|TUE|WED|THU|FRI|SAT))?)*"
)


def schedule_problems(config: StageConfig) -> list[str]:
    """The provisioned-concurrency schedule's settings that could not deploy."""
    problems = []
    hours = config.provisioned_hours
    if hours:
        match = HOURS.fullmatch(hours)
        if match is None or int(match.group(1)) >= int(match.group(2)):
            problems.append(
                f"provisionedHours is {hours!r}; it must be START-STOP in whole hours, "
                "0 <= START < STOP <= 23 (e.g. 08-18), or empty for all day"
            )
    if not DAYS.fullmatch(config.provisioned_days) or any(
        DAY_NAMES.index(a) > DAY_NAMES.index(b)
        for a, _, b in (p.partition("-") for p in config.provisioned_days.split(",") if "-" in p)
    ):
        problems.append(
            f"provisionedDays is {config.provisioned_days!r}; it must be cron days of the "
            "week such as MON-FRI, SAT,SUN or *"
        )
    try:
        zoneinfo.ZoneInfo(config.provisioned_time_zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        problems.append(
            f"provisionedTimeZone is {config.provisioned_time_zone!r}; it must be an IANA "
            "time zone such as UTC or Europe/Berlin"
        )
    return problems


def openai_problems(config: StageConfig) -> list[str]:
    """The OpenAI-compatible endpoint's settings that could not deploy."""
    problems = []
    if config.openai_requests_per_minute < 1:
        problems.append(
            f"openaiRequestsPerMinute is {config.openai_requests_per_minute}; it must be 1 or more"
        )
    if config.is_prod and config.openai_endpoint and not config.openai_require_key:
        problems.append("openaiRequireKey must be true in Prod: its endpoint is public")
    for origin in config.openai_allowed_origins:
        if not ORIGIN.fullmatch(origin):
            problems.append(
                f"openaiAllowedOrigins has {origin!r}; each must be scheme://host[:port], "
                "no path and no wildcard"
            )
    return problems


# A browser origin as CORS compares it: scheme, host, optional port, nothing more.
ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?")


DEV = StageConfig(
    stage_name="Dev",
    # Warm only in office hours: no provisioned spend at night or at weekends.
    provisioned_concurrency=1,
    provisioned_hours="08-18",
    provisioned_days="MON-FRI",
    provisioned_time_zone="UTC",
    reserved_concurrency=2,
    throttle_rate_limit=10.0,
    throttle_burst_limit=20,
    require_token=False,
    allowed_origins=LOCAL_PAGE_ORIGINS,
    retain_data=False,
    point_in_time_recovery=False,
    log_retention_days=14,
)

PROD = StageConfig(
    stage_name="Prod",
    provisioned_concurrency=1,
    reserved_concurrency=10,
    throttle_rate_limit=50.0,
    throttle_burst_limit=100,
    require_token=True,
    allowed_origins=(),
    retain_data=True,
    point_in_time_recovery=True,
    log_retention_days=90,
    conversation_ttl_days=30,
)

STAGES: dict[str, StageConfig] = {c.stage_name: c for c in (DEV, PROD)}


def context_keys() -> list[str]:
    """The camelCase keys `cdk -c` accepts, one per overridable field."""
    return [_camel(f.name) for f in dataclasses.fields(StageConfig) if f.name not in NOT_SETTINGS]


def _snake(key: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in key).lstrip("_")


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


def _coerce(name: str, current: Any, raw: Any) -> Any:
    if not isinstance(raw, str):
        value = raw
    elif isinstance(current, bool):
        if raw.lower() not in ("true", "false"):
            raise ConfigError(f"{_camel(name)} must be true or false, not {raw!r}")
        value = raw.lower() == "true"
    elif isinstance(current, int | float):
        try:
            value = type(current)(raw)
        except ValueError:
            kind = "a whole number" if isinstance(current, int) else "a number"
            raise ConfigError(f"{_camel(name)} must be {kind}, not {raw!r}") from None
    elif isinstance(current, tuple):
        value = tuple(p.strip() for p in raw.split(",") if p.strip())
    elif name == "alarm_email":
        value = raw or None
    else:
        value = raw
    if isinstance(current, tuple) and isinstance(value, list):
        value = tuple(value)
    return value
