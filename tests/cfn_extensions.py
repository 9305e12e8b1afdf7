"""What the AWS::LanguageExtensions transform does to template.yaml before SAM sees it, for offline tests.

template.yaml lists `AWS::LanguageExtensions` before `AWS::Serverless-2016-10-31`: CloudFormation runs
it first and it resolves `Fn::If` whose condition is known from the parameters (dropping
`!Ref AWS::NoValue`), so SAM gets plain values for the parameter-driven API auth, CORS and gateway
responses (SAM does not evaluate `Fn::If` itself: aws/serverless-application-model#1553, #1859).
samtranslator does not run that transform, so the template tests apply this small equivalent to the
AWS::Serverless::* resources first -- the only place where it matters to the outcome: anywhere else
CloudFormation evaluates `Fn::If` itself.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

_DROP = object()  # a value that was !Ref AWS::NoValue


def parameter_values(sam: Mapping[str, Any], overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Defaults, then `overrides`; CommaDelimitedList values as lists, everything else as strings."""
    values: dict[str, Any] = {}
    for name, decl in (sam.get("Parameters") or {}).items():
        if name in (overrides or {}):
            raw = overrides[name]  # type: ignore[index]
        elif "Default" in decl:
            raw = decl["Default"]
        else:
            continue
        if decl.get("Type") == "CommaDelimitedList":
            values[name] = raw if isinstance(raw, list) else str(raw).split(",") if raw != "" else [""]
        else:
            values[name] = str(raw).lower() if isinstance(raw, bool) else str(raw)
    return values


def _value(v: Any, params: Mapping[str, Any]) -> Any:
    if isinstance(v, dict) and len(v) == 1:
        (key, arg), = v.items()
        if key == "Ref" and arg in params:
            return params[arg]
        if key == "Fn::Join":
            sep, items = arg
            items = _value(items, params)
            return sep.join(str(_value(i, params)) for i in items)
        raise ValueError(f"cannot evaluate {v!r} in a condition offline")
    return v


def evaluate(name: str, sam: Mapping[str, Any], params: Mapping[str, Any]) -> bool:
    """A template condition's value for these parameters (Equals / Not / And / Or / Condition)."""
    conditions = sam.get("Conditions") or {}

    def ev(c: Any) -> bool:
        (key, arg), = c.items()
        if key == "Condition":
            return ev(conditions[arg])
        if key == "Fn::Equals":
            a, b = (_value(x, params) for x in arg)
            return str(a) == str(b)
        if key == "Fn::Not":
            return not ev(arg[0])
        if key == "Fn::And":
            return all(ev(x) for x in arg)
        if key == "Fn::Or":
            return any(ev(x) for x in arg)
        raise ValueError(f"condition {name}: {key} is not supported offline")

    return ev(conditions[name])


def _resolve(v: Any, sam: Mapping[str, Any], params: Mapping[str, Any]) -> Any:
    if isinstance(v, dict):
        if len(v) == 1 and "Fn::If" in v:
            cond, yes, no = v["Fn::If"]
            return _resolve(yes if evaluate(cond, sam, params) else no, sam, params)
        if v == {"Ref": "AWS::NoValue"}:
            return _DROP
        out = {k: _resolve(x, sam, params) for k, x in v.items()}
        return {k: x for k, x in out.items() if x is not _DROP}
    if isinstance(v, list):
        return [x for x in (_resolve(i, sam, params) for i in v) if x is not _DROP]
    return v


def apply_language_extensions(sam: dict[str, Any], overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A copy of `sam` whose AWS::Serverless::* resources have their Fn::If resolved for these parameters."""
    sam = copy.deepcopy(sam)
    params = parameter_values(sam, overrides)
    for res in (sam.get("Resources") or {}).values():
        if isinstance(res, dict) and str(res.get("Type", "")).startswith("AWS::Serverless::") and "Properties" in res:
            props = _resolve(res["Properties"], sam, params)
            res["Properties"] = {} if props is _DROP else props
    transform = sam.get("Transform")
    if isinstance(transform, list):  # done: what remains is SAM's
        sam["Transform"] = [t for t in transform if t != "AWS::LanguageExtensions"] or transform
        if len(sam["Transform"]) == 1:
            sam["Transform"] = sam["Transform"][0]
    return sam


def prune_resolved(cfn: dict[str, Any]) -> dict[str, Any]:
    """Drop the conditions and parameters nothing refers to any more once their Fn::If were resolved
    (the SAM source is linted as written, so a parameter that is unused there is still reported)."""
    import json

    def refs() -> str:
        return json.dumps({k: v for k, v in cfn.items() if k not in ("Parameters", "Conditions")}) + json.dumps(
            {"c": cfn.get("Conditions") or {}})

    changed = True
    while changed:  # a condition may only be used by another condition that is itself unused
        changed = False
        text = json.dumps({k: v for k, v in cfn.items() if k != "Conditions"})
        for name in list(cfn.get("Conditions") or {}):
            others = json.dumps({k: v for k, v in cfn["Conditions"].items() if k != name})
            if f'"{name}"' not in text and f'"{name}"' not in others:
                del cfn["Conditions"][name]
                changed = True
    text = refs()
    for name in list(cfn.get("Parameters") or {}):
        if f'"{name}"' not in text and f"${{{name}}}" not in text:
            del cfn["Parameters"][name]
    return cfn
