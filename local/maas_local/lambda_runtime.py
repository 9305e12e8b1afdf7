"""A function's handler run in this process like a warm Lambda container: imported once from its CodeUri,
invoked one request at a time, with a context whose remaining time really counts down."""

from __future__ import annotations

import importlib.util
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from maas_local.template import LOCAL_ACCOUNT_ID, LOCAL_REGION, Route


class FakeLambdaContext:
    """What Powertools and handlers read from a Lambda context, with a real countdown."""

    def __init__(self, route: Route, request_id: str) -> None:
        self.function_name = route.function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:{LOCAL_REGION}:{LOCAL_ACCOUNT_ID}:function:{route.function_name}"
        self.memory_limit_in_mb = route.memory_size
        self.aws_request_id = request_id
        self.log_group_name = f"/aws/lambda/{route.function_name}"
        self.log_stream_name = f"local/{request_id}"
        self.identity = None
        self.client_context = None
        self._deadline = time.monotonic() + route.timeout

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class LoadedFunction:
    """One function's handler, imported once (a warm container), invoked one request at a time."""

    def __init__(self, route: Route, module: ModuleType, handler: Callable[[dict[str, Any], Any], Any]) -> None:
        self.route = route
        self.module = module
        self.handler = handler
        self.lock = threading.Lock()

    def invoke(self, event: dict[str, Any], context: FakeLambdaContext) -> Any:
        with self.lock:
            return self.handler(event, context)


_module_counter = 0
_module_counter_lock = threading.Lock()


def load_handler(route: Route) -> LoadedFunction:
    """Import `<CodeUri>/<module path>.py` under a unique name and return its handler function.

    Handler "app.lambda_handler" -> <CodeUri>/app.py, attribute lambda_handler. While the module
    runs its top level, CodeUri is first on sys.path so `import helpers` of a sibling file works.
    """
    global _module_counter
    module_path, _, attr = route.handler.rpartition(".")
    if not module_path or not attr:
        raise ValueError(f"{route.function}: Handler {route.handler!r} is not 'module.function'")
    rel = Path(*module_path.split("."))
    file = route.code_uri / rel.with_suffix(".py")
    if not file.is_file():
        file = route.code_uri / rel / "__init__.py"
    if not file.is_file():
        raise FileNotFoundError(f"{route.function}: handler module {module_path!r} not found under {route.code_uri}")
    with _module_counter_lock:
        _module_counter += 1
        unique = f"maas_local_functions.{route.function}_{_module_counter}"
    spec = importlib.util.spec_from_file_location(unique, file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[unique] = module
    sys.path.insert(0, str(route.code_uri))
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(unique, None)
        raise
    finally:
        try:
            sys.path.remove(str(route.code_uri))
        except ValueError:
            pass
    handler = getattr(module, attr, None)
    if not callable(handler):
        raise AttributeError(f"{route.function}: {file} has no callable {attr!r}")
    return LoadedFunction(route, module, handler)
