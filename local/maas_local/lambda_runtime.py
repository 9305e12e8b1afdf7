"""A function's handler run in this process like a warm Lambda container: imported once from its CodeUri,
invoked one request at a time, with a context whose remaining time really counts down.

`load_function("predict")` is the same import of functions/predict/app.py for the tests, the benchmarks
and the local triggers (maas_local.batch_trigger, maas_local.train_trigger); the gateway loads each
template route's handler with `load_handler`.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from maas_core.aws_target import LOCAL_REGION
from maas_local.lambda_context import FakeLambdaContext
from maas_local.template import LOCAL_ACCOUNT_ID, Route

REPO_ROOT = Path(__file__).resolve().parents[2]
_import_lock = threading.RLock()  # sys.path is the process's: one function's top level runs at a time


def context_for(route: Route, request_id: str) -> FakeLambdaContext:
    """The context of one invocation of the route's function: its name, memory and timeout, counting down."""
    return FakeLambdaContext(route.function_name, memory_limit_in_mb=route.memory_size, aws_request_id=request_id,
                             remaining_ms=int(route.timeout * 1000), counting_down=True, region=LOCAL_REGION,
                             account_id=LOCAL_ACCOUNT_ID)


def import_function_file(file: Path, code_uri: Path) -> ModuleType:
    """`file` imported afresh, as a new Lambda container imports its handler: a new module each call (its
    per-process caches empty), registered as `maas_function_<CodeUri folder>[_<module>]` in place of the
    previous one. While its top level runs, `code_uri` is first on sys.path, so `import helpers` of a
    sibling file works."""
    name = f"maas_function_{code_uri.name}"
    relative = file.relative_to(code_uri).with_suffix("")
    if relative.parts != ("app",):
        name += "_" + "_".join(p for p in relative.parts if p != "__init__")
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise FileNotFoundError(file)
    module = importlib.util.module_from_spec(spec)
    with _import_lock:
        sys.modules[name] = module
        sys.path.insert(0, str(code_uri))
        try:
            spec.loader.exec_module(module)
        except BaseException:
            if sys.modules.get(name) is module:
                del sys.modules[name]
            raise
        finally:
            try:
                sys.path.remove(str(code_uri))
            except ValueError:
                pass
    return module


def load_function(name: str, repo_root: str | Path | None = None) -> ModuleType:
    """functions/{name}/app.py of the repository (or of `repo_root`), imported afresh."""
    code_uri = (Path(repo_root) if repo_root else REPO_ROOT) / "functions" / name
    return import_function_file(code_uri / "app.py", code_uri)


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


def load_handler(route: Route) -> LoadedFunction:
    """Import `<CodeUri>/<module path>.py` afresh and return its handler function.

    Handler "app.lambda_handler" -> <CodeUri>/app.py, attribute lambda_handler.
    """
    module_path, _, attr = route.handler.rpartition(".")
    if not module_path or not attr:
        raise ValueError(f"{route.function}: Handler {route.handler!r} is not 'module.function'")
    rel = Path(*module_path.split("."))
    file = route.code_uri / rel.with_suffix(".py")
    if not file.is_file():
        file = route.code_uri / rel / "__init__.py"
    if not file.is_file():
        raise FileNotFoundError(f"{route.function}: handler module {module_path!r} not found under {route.code_uri}")
    module = import_function_file(file, route.code_uri)
    handler = getattr(module, attr, None)
    if not callable(handler):
        raise AttributeError(f"{route.function}: {file} has no callable {attr!r}")
    return LoadedFunction(route, module, handler)
