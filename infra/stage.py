"""One deployable copy of the system: `Dev` or `Prod`, built from its StageConfig."""

from __future__ import annotations

import dataclasses
from typing import Any

import aws_cdk as cdk
from constructs import Construct

from infra.config import StageConfig
from infra.names import STATEFUL, STATELESS
from infra.stateful_stack import StatefulStack
from infra.stateless_stack import StatelessStack


class LlambdaStage(cdk.Stage):
    """The stateful stack (data) and the stateless stack (everything else)."""

    def __init__(
        self, scope: Construct, construct_id: str, *, config: StageConfig, **kwargs: Any
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        if self.stage_name != config.stage_name:
            # The pipeline's copy (`Pipeline-Dev`): its metrics must not mix with `Dev`'s.
            config = dataclasses.replace(config, deployment=self.stage_name)
        self.config = config
        self.stateful = StatefulStack(
            self,
            STATEFUL,
            config=config,
            description=f"llambda {config.stage_name}: conversation table",
        )
        self.stateless = StatelessStack(
            self,
            STATELESS,
            config=config,
            table_reference=self.stateful.table_reference,
            description=f"llambda {config.stage_name}: functions, WebSocket API, chat page",
        )
        # Not a reference CDK sees (TableReference), so the deploy order is stated.
        self.stateless.add_dependency(self.stateful)
        cdk.Tags.of(self).add("Project", "llambda")
        cdk.Tags.of(self).add("Stage", config.stage_name)
        for key, value in config.tags:
            cdk.Tags.of(self).add(key, value)
