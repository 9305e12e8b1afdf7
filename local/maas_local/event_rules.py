"""Local stand-in for EventBridge delivering to functions (moto matches events to rules, but cannot invoke a
function the local stack does not deploy), and for EventBridge Scheduler firing a schedule.

Deployed, CloudWatch puts an alarm state change on the default event bus, the template's CanaryAlarmRule
matches it and invokes the guardrail function asynchronously; a promotion schedule invokes the same function
with its Input at its time. Locally:

    rules = EventRules(stack.client("events"), stack.client("sqs"), rule_targets(template, names), invoke)
    rules.start()                      # each function target of a rule is swapped for a local queue
    rules.put_events([{"Source": "aws.cloudwatch", "DetailType": ..., "Detail": json.dumps(...)}])
                                       # moto's EventBridge matches the rule's pattern; what it routed to a
                                       # function's queue is handed to the function: [its results]
    rules.fire_schedule(name)          # a schedule's Target.Input to the function its Target.Arn names

So the pattern that decides which events reach the function is the template's own, evaluated by moto.
Not modelled: asynchronous invocation (events are delivered when put_events / fire_schedule is called, one at a
time, in this thread) and its retries (an exception propagates); CloudWatch itself emitting the state change (a
test sets the alarm's state, then puts the event it would send: maas_local.testing.events.alarm_state_change);
Scheduler's clock (a schedule fires when told, not at its at(...) time; ActionAfterCompletion is not applied).

Dev-only code: never shipped to Lambda.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from maas_local.template import RuleTarget

log = logging.getLogger(__name__)

Invoke = Callable[[RuleTarget, dict[str, Any]], Any]


class EventRules:
    def __init__(self, events: Any, sqs: Any, targets: Sequence[RuleTarget], invoke: Invoke,
                 scheduler: Any | None = None) -> None:
        self.events, self.sqs, self.scheduler = events, sqs, scheduler
        self.targets = list(targets)
        self.invoke = invoke
        self._queues: dict[str, tuple[str, RuleTarget]] = {}  # queue url -> (rule, target)

    def start(self) -> EventRules:
        for target in self.targets:
            queue = re.sub(r"[^A-Za-z0-9_-]", "-", f"{target.rule}-{target.target_id}")[:80]
            url = self.sqs.create_queue(QueueName=queue)["QueueUrl"]
            arn = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            self.events.remove_targets(Rule=target.rule, Ids=[target.target_id])
            self.events.put_targets(Rule=target.rule, Targets=[{"Id": target.target_id, "Arn": arn}])
            self._queues[url] = (target.rule, target)
            log.info("%s gets the events of rule %s in-process", target.route.function, target.rule)
        return self

    def put_events(self, entries: Sequence[Mapping[str, Any]]) -> list[Any]:
        """Put the events on the default bus; deliver what the rules routed to functions. Their results."""
        resp = self.events.put_events(Entries=list(entries))
        if resp.get("FailedEntryCount"):
            raise RuntimeError(f"EventBridge refused events: {resp['Entries']}")
        results = []
        for url, (_, target) in self._queues.items():
            while True:
                got = self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
                if not got:
                    break
                for message in got:
                    self.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
                    results.append(self.invoke(target, json.loads(message["Body"])))
        return results

    def fire_schedule(self, name: str, group: str = "default") -> Any:
        """Invoke the function a schedule targets with its Input, as Scheduler does at the schedule's time."""
        if self.scheduler is None:
            raise RuntimeError("no scheduler client given")
        schedule = self.scheduler.get_schedule(Name=name, GroupName=group)
        arn = schedule["Target"]["Arn"]
        target = next((t for t in self.targets if t.function_arn == arn), None)
        if target is None:
            raise LookupError(f"schedule {name!r} targets {arn}, which is no function of the template's rules")
        return self.invoke(target, json.loads(schedule["Target"].get("Input") or "{}"))
