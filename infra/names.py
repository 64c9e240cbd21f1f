"""Names a deployed stage is found by: its stacks and their outputs.

CDK names a stage's stack `<stage name>-<stack id>`; the stacks and `python -m preflight`
both take the names from here, so a rename cannot leave the preflight looking elsewhere.
"""

STATEFUL = "Stateful"
STATELESS = "Stateless"
# The pipeline stack's id, and the prefix of its stages' names (`Pipeline-Dev`).
PIPELINE = "Pipeline"

# Outputs of the stateless stack.
WEBSOCKET_URL_OUTPUT = "WebSocketUrl"
WEB_CLIENT_URL_OUTPUT = "WebClientUrl"
# Instead of WebClientUrl with hosting=false: the locally served page's address.
LOCAL_PAGE_OUTPUT = "LocalPageUrl"
ACCESS_KEY_OUTPUT = "AccessKeySecretArn"
TOKEN_OUTPUT = "TokenSecretArn"
# The kill switch's SSM parameter (`make generation` finds it by this output).
GENERATION_OUTPUT = "GenerationParameter"
# The OpenAI-compatible endpoint (a Function URL), where the stage has it.
OPENAI_URL_OUTPUT = "OpenAIUrl"


def pipeline_stage_name(stage_name: str) -> str:
    """The pipeline's copy of a stage: its own stacks, never a hand-deployed stage's."""
    return f"{PIPELINE}-{stage_name}"


def stack_name(stage_name: str, stack_id: str) -> str:
    """The CloudFormation stack name CDK gives `stack_id` in the stage `stage_name`."""
    return f"{stage_name}-{stack_id}"
