"""The VDMS dialect: rename its parameters to ApertureDB's, run, and answer the VDMS way.

VDMS spells the same ideas differently (`class` for `with_class`, `link` for
`is_connected_to`/`connect`, `ref1`/`ref2`, `image`, conditional adds via `constraints`,
blobs via `results.blob`) and answers a failed transaction with a one-element list.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

from lensdb.errors import Status, answer, failure

Runner = Callable[[Any, Any], tuple[list | dict, list[bytes]]]


def run(
    query: Runner, commands: list | str | bytes, blobs: list[bytes] | None
) -> tuple[list | dict, list[bytes]]:
    if isinstance(commands, bytes | bytearray):
        commands = commands.decode("utf-8", errors="replace")
    if isinstance(commands, str):
        try:
            commands = json.loads(commands)
        except (ValueError, RecursionError):
            return _failure("Transaction", "Error parsing the query, ill formed JSON"), []
    try:
        # Not a list: the engine explains the envelope error, answered below as a list.
        translated = [_command(c) for c in commands] if isinstance(commands, list) else commands
    except RecursionError:
        return _failure("Transaction", "parameters nested too deeply"), []
    response, out = query(translated, blobs)
    if isinstance(response, dict):
        failed: Any = response.get("FailedCommand", "Transaction")
        for c in commands if isinstance(commands, list) else []:
            if isinstance(c, dict) and failed in c:
                failed = c
                break
        return _failure(failed, response.get("info", "")), []
    for r in response:
        name = next(iter(r))
        body = r[name]
        if name == "AddEntity" and body.get("status") == Status.EXISTS:
            r[name] = answer()
        if (
            name.startswith("Find")
            and body.get("returned", 1) == 0
            and "entities" not in body
            and "count" not in body
        ):
            body["info"] = "No entities found"
    return response, out


def _failure(failed: Any, info: str) -> list[dict[str, Any]]:
    return [failure(info, FailedCommand=failed)]


def _command(cmd: Any) -> Any:
    if not isinstance(cmd, dict) or len(cmd) != 1:
        return cmd
    name, body = next(iter(cmd.items()))
    if not isinstance(body, dict):
        return cmd
    b = copy.deepcopy(body)
    if name.startswith(("Find", "Update", "Delete")) and "class" in b:
        b["with_class"] = b.pop("class")
    if "link" in b:
        link = b.pop("link")
        if isinstance(link, dict) and "class" in link:
            link["connection_class" if name.startswith("Find") else "class"] = link.pop("class")
        b["is_connected_to" if name.startswith("Find") else "connect"] = link
    if name.startswith("Add") and name != "AddConnection" and "constraints" in b:
        b["if_not_found"] = b.pop("constraints")
    if name in ("AddConnection", "FindConnection"):
        for old, new in (("ref1", "src"), ("ref2", "dst")):
            if old in b:
                b[new] = b.pop(old)
    if "image" in b and name.endswith(("BoundingBox", "Polygon")):
        b["image_ref"] = b.pop("image")
    if name in ("FindDescriptorSet", "DeleteDescriptorSet") and "set" in b:
        b["with_name"] = b.pop("set")
    if name in ("FindImage", "FindDescriptor"):
        results = b.setdefault("results", {})
        if isinstance(results, dict):
            b["blobs"] = bool(results.pop("blob", True))  # VDMS returns pixels by default
        if "format" in b:
            b["as_format"] = b.pop("format")
    if isinstance(b.get("constraints"), dict):
        b["constraints"] = {k: _predicate(v) for k, v in b["constraints"].items()}
    return {name: b}


def _predicate(pred: Any) -> Any:
    # VDMS: [op, [v1, v2]] means "op against any of the values".
    if isinstance(pred, list) and len(pred) == 2 and isinstance(pred[1], list):
        if pred[0] == "==":
            return ["in", pred[1]]
        if pred[0] == "!=":
            return ["not in", pred[1]]
    return pred
