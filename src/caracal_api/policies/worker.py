"""One Rego worker process: `python -m caracal_api.policies.worker`.

The parent (`engine.RegoEngine`) talks to it over the process's original stdin/stdout
with length-prefixed JSON frames. Before anything else the worker moves that channel to
private descriptors and points fds 0, 1 and 2 at /dev/null, so whatever regopy or a
tenant's `print()` writes never reaches the service's JSON log stream, and it empties its
environment, so `opa.runtime()` (refused by the validator anyway) has nothing to reveal.

Requests (`op`): `ping`; `check` (the compile check of one content, policies.md §2.2);
`verify` (build a bundle and evaluate its data rules, §5.3); `evaluate` (the decision of
a cached bundle, §3.2). A request may be answered by a `{"progress": "compiled"}` frame
before its final frame, so the parent can tell a compile timeout from an evaluation one.
"""

from __future__ import annotations

import os
import signal
import struct
import sys
import time
from collections import OrderedDict
from typing import Any

import orjson

_HEADER = struct.Struct(">I")


class Channel:
    """Length-prefixed JSON frames over two file descriptors."""

    def __init__(self, read_fd: int, write_fd: int) -> None:
        self._read_fd = read_fd
        self._write_fd = write_fd

    def _read_exactly(self, size: int) -> bytes | None:
        chunks: list[bytes] = []
        remaining = size
        while remaining:
            chunk = os.read(self._read_fd, min(remaining, 1 << 20))
            if not chunk:
                return None
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)

    def receive(self) -> dict[str, Any] | None:
        header = self._read_exactly(_HEADER.size)
        if header is None:
            return None
        body = self._read_exactly(_HEADER.unpack(header)[0])
        if body is None:
            return None
        message: dict[str, Any] = orjson.loads(body)
        return message

    def send(self, message: dict[str, Any]) -> None:
        body = orjson.dumps(message)
        data = memoryview(_HEADER.pack(len(body)) + body)
        while data:
            written = os.write(self._write_fd, data)
            data = data[written:]


def _isolate() -> Channel:
    read_fd = os.dup(0)
    write_fd = os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    return Channel(read_fd, write_fd)


class Worker:
    """Request handling with an LRU of built bundles keyed by digest."""

    def __init__(self, channel: Channel, cache_size: int) -> None:
        import regopy

        from caracal_api.policies import contract, datadocs, diagnostics

        self._regopy = regopy
        self._contract = contract
        self._datadocs = datadocs
        self._diagnostics = diagnostics
        self._channel = channel
        self._cache: OrderedDict[str, tuple[Any, Any]] = OrderedDict()
        self._cache_size = cache_size

    # --- regopy plumbing -----------------------------------------------------------------

    def _interpreter(self) -> Any:
        rego = self._regopy.Interpreter()
        rego.log_level = self._regopy.LogLevel.NONE
        rego.strict_built_in_errors = True
        return rego

    def _build(self, modules: list[tuple[str, str]], data: str | None) -> tuple[Any, Any]:
        """Compile the contract with tenant modules, or with their data; RegoError on failure."""
        rego = self._interpreter()
        rego.add_module(self._contract.CONTRACT_MODULE, self._contract.CONTRACT_SOURCE)
        if data is not None:
            rego.add_data_json(data)
        else:
            for file_name, source in modules:
                rego.add_module(file_name, source)
        bundle = rego.build(None, list(self._contract.ENTRYPOINTS))
        if not bundle.ok():
            raise self._regopy.RegoError("the bundle could not be built")
        return rego, bundle

    def _build_bundle(self, modules: list[tuple[str, str]]) -> tuple[tuple[Any, Any], bool]:
        """(interpreter, bundle) and whether the tenant modules were loaded as Rego."""
        data = self._datadocs.data_json([source for _, source in modules])
        if data is not None:
            try:
                return self._build(modules, data), False
            except self._regopy.RegoError:
                pass  # let the Rego modules themselves say what is wrong
        return self._build(modules, None), True

    def _query(self, rego: Any, bundle: Any, entrypoint: str, input_value: Any) -> dict[str, Any]:
        from regopy import rego_shared as lib

        try:
            rego.set_input(self._regopy.Input(input_value))
        except Exception:  # e.g. an integer beyond int64: let regopy parse the JSON text
            lib.rego_set_input_term(rego._impl, orjson.dumps(input_value).decode())
        output = lib.rego_bundle_query_entrypoint(rego._impl, bundle._impl, entrypoint)
        try:
            ok = lib.rego_output_ok(output)
            text = lib.rego_output_string(output) if ok else ""
            if not ok:
                return {"status": "error", "message": self._error_message(lib, output)}
        finally:
            lib.rego_free_output(output)
        return self._read_output(text)

    def _read_output(self, text: str) -> dict[str, Any]:
        if text == "undefined":
            return {"status": "undefined"}
        if text.startswith("(error"):
            return {"status": "error", "message": self._diagnostics.first_message(text)}
        try:
            document = orjson.loads(text)
            expressions = document["expressions"]
            return {"status": "ok", "value": expressions[0]}
        except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
            return {"status": "error", "message": "unreadable evaluation output"}

    def _error_message(self, lib: Any, output: Any) -> str:
        kinds = self._regopy.NodeKind
        stack = [lib.rego_output_node(output)]
        while stack:
            node = stack.pop()
            if not node:
                continue
            if lib.rego_node_type(node) == kinds.ErrorMessage:
                message = lib.rego_node_value(node)
                if message:
                    return str(self._diagnostics.truncate(message))
                continue
            size = lib.rego_node_size(node)
            stack.extend(lib.rego_node_get(node, i) for i in reversed(range(size)))
        return "evaluation error"

    def _remember(self, digest: str, built: tuple[Any, Any]) -> None:
        self._cache[digest] = built
        self._cache.move_to_end(digest)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    def _compile_error(self, exc: Exception) -> dict[str, Any]:
        return {"status": "compile_error", "text": str(exc)}

    # --- requests ------------------------------------------------------------------------

    def check(self, request: dict[str, Any]) -> dict[str, Any]:
        content: str = request["content"]
        try:
            rego = self._interpreter()
            rego.add_module(self._contract.CONTRACT_MODULE, self._contract.CONTRACT_SOURCE)
            rego.add_module(self._contract.CHECK_MODULE_FILE, content)
            bundle = rego.build(None, list(self._contract.ENTRYPOINTS))
        except self._regopy.RegoError as exc:
            return self._compile_error(exc)
        self._channel.send({"progress": "compiled"})
        statements = self._datadocs.json_statements(content)
        if statements is not None and self._datadocs.has_single_definitions(statements):
            return {"status": "ok"}  # JSON literals: nothing left that can fail to evaluate
        for rule in request["rules"]:
            outcome = self._query(rego, bundle, self._contract.DATA_ENTRYPOINTS[rule], {})
            if outcome["status"] == "error":
                return {"status": "eval_error", "message": outcome["message"]}
        return {"status": "ok"}

    def verify(self, request: dict[str, Any]) -> dict[str, Any]:
        modules = [(name, source) for name, source in request["modules"]]
        try:
            (rego, bundle), as_rego = self._build_bundle(modules)
        except self._regopy.RegoError as exc:
            return self._compile_error(exc)
        self._channel.send({"progress": "compiled"})
        self._remember(request["digest"], (rego, bundle))
        if as_rego:
            for entrypoint in self._contract.DATA_ENTRYPOINTS.values():
                outcome = self._query(rego, bundle, entrypoint, {})
                if outcome["status"] == "error":
                    return {"status": "eval_error", "message": outcome["message"]}
        return {"status": "ok"}

    def evaluate(self, request: dict[str, Any]) -> dict[str, Any]:
        digest: str = request["digest"]
        built = self._cache.get(digest)
        cache = "hit"
        if built is None:
            if "modules" not in request:
                return {"status": "miss"}
            cache = "miss"
            modules = [(name, source) for name, source in request["modules"]]
            try:
                built, _ = self._build_bundle(modules)
            except self._regopy.RegoError as exc:
                return self._compile_error(exc)
            self._channel.send({"progress": "compiled"})
            self._remember(digest, built)
        else:
            self._cache.move_to_end(digest)
        rego, bundle = built
        outcome = self._query(rego, bundle, self._contract.RESULT_ENTRYPOINT, request["input"])
        outcome["cache"] = cache
        return outcome

    def serve(self) -> None:
        handlers = {"check": self.check, "verify": self.verify, "evaluate": self.evaluate}
        self._channel.send({"status": "ready"})
        while True:
            request = self._channel.receive()
            if request is None:
                return
            op = str(request.get("op"))
            started = time.perf_counter()
            try:
                if op == "ping":
                    response: dict[str, Any] = {"status": "ok"}
                else:
                    response = handlers[op](request)
            except Exception as exc:  # a bug here must not look like a decision
                response = {"status": "internal_error", "message": f"{type(exc).__name__}"}
            if response.get("status") != "miss":
                response["took"] = time.perf_counter() - started
            self._channel.send(response)


def main() -> None:
    channel = _isolate()
    import regopy

    # Once per process, before any interpreter exists (a second call aborts the process).
    regopy.set_default_log_level("None")
    cache_size = int(sys.argv[1]) if len(sys.argv) > 1 else 64
    worker = Worker(channel, cache_size)
    os.environ.clear()  # after the imports: nothing for opa.runtime() to reveal
    worker.serve()


if __name__ == "__main__":
    main()
