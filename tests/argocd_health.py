"""Runs the chart's Argo CD health checks the way Argo CD does: the script, with the object as the
global `obj`, in Lua 5.1 (Argo CD embeds gopher-lua, a Lua 5.1)."""

from __future__ import annotations

from pathlib import Path

from lupa.lua51 import LuaRuntime

HEALTH = Path(__file__).parents[1] / "charts" / "kafka-usecase-operator" / "docs" / "argocd" / "kafka.usecase.dev"


def health(obj: dict) -> tuple[str, str]:
    """(status, message) of Argo CD's health for `obj`."""
    lua = LuaRuntime(unpack_returned_tuples=True)
    lua.globals().obj = lua.table_from(obj, recursive=True)
    result = lua.execute((HEALTH / obj["kind"] / "health.lua").read_text())
    return result["status"], result["message"]
