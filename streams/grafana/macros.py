"""What Grafana and the ClickHouse plugin do to a panel's SQL before ClickHouse sees it,
so tests and `ccpulse bench` can run the dashboards' queries without a Grafana server.

Three passes, in the plugin's order:

1. ``$__conditionalAll(condition, $var)`` -- the plugin's frontend
   (grafana/clickhouse-datasource src/data/CHDatasource.ts ``applyConditionalAll``):
   from the last occurrence backwards, the macro becomes ``1=1`` when the variable's
   current value is "All" (``$__all``) or empty, else the condition itself.
2. Template variables -- Grafana's ``templateSrv.replace`` with the plugin's ``format``:
   ``$var``, ``${var}``, ``[[var]]`` and ``${var:format}``; without a format a multi-value
   becomes ``'a','b'`` and a single value is inserted as it is (unquoted). "All" without an
   ``allValue`` stands for every option of the variable. Unknown names stay as they are.
3. Backend macros -- grafana-plugin-sdk-go ``sqlutil.Interpolate`` with the plugin's
   pkg/macros/macros.go: ``$__timeFilter(c)`` -> ``c >= toDateTime(from_s) AND c <=
   toDateTime(to_s)`` and the rest below. The SDK takes the first ``(`` after a macro name
   as the start of its arguments even when other text comes between (``$__fromTime AND
   x IN (1)`` loses ``AND x IN (1)``; grafana/sqlds#82) and applies macros in Go's random
   map order; such queries are refused here instead of expanded one of several ways.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone

Value = str | list[str]
ALL = "$__all"

#: Grafana's variable syntax (public/app/features/variables/utils.ts, variableRegex).
VARIABLE_RE = re.compile(r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^\}]+))?(?::([^\}]+))?\}")
#: Macros the plugin expands in the backend (pkg/macros/macros.go).
BACKEND_MACROS = ("fromTime", "toTime", "fromTime_ms", "toTime_ms", "timeFilter", "timeFilter_ms", "dateFilter",
                  "dateTimeFilter", "dt", "timeInterval", "timeInterval_ms", "interval_s")
#: sqlutil's generic defaults, which would produce non-ClickHouse SQL: refused.
SDK_DEFAULT_MACROS = ("timeFrom", "timeTo", "timeGroup", "table", "column")
#: Grafana's global variables that a query may use besides the dashboard's own.
BUILTIN_VARIABLES = ("__from", "__to", "__interval", "__interval_ms", "__range", "__range_s", "__range_ms",
                     "__rate_interval", "__dashboard", "__org", "__user", "__timezone")
PLUGIN_MACROS = ("conditionalAll", *BACKEND_MACROS)


class MacroError(ValueError):
    """A query the plugin would expand wrongly or reject."""


def expand(sql: str, *, from_ms: int, to_ms: int, interval_s: float, variables: Mapping[str, Value],
           all_values: Mapping[str, Sequence[str]] | None = None) -> str:
    """The SQL the plugin sends for this time range, interval and variable values.

    ``variables`` maps names to the current value: a string for a single-value variable, a
    list for a multi-value one, ``"$__all"`` (or ``["$__all"]``) for "All", whose options
    then come from ``all_values``.
    """
    sql = conditional_all(sql, variables)
    sql = interpolate(sql, variables, all_values or {}, from_ms=from_ms, to_ms=to_ms, interval_s=interval_s)
    sql = backend_macros(sql, from_ms=from_ms, to_ms=to_ms, interval_s=interval_s)
    left = re.findall(r"\$\{?\w+", sql)
    if left:
        raise MacroError(f"not expanded: {sorted(set(left))}")
    return sql


# --- 1. $__conditionalAll (frontend) ------------------------------------------------------

_CONDITIONAL = "$__conditionalAll("
_VAR_IN_ARG = re.compile(r"(?<=\$\{)[\w\d]+(?=\})|(?<=\$)[\w\d]+")


def macro_args(query: str, args_index: int) -> list[str]:
    """CHDatasource.getMacroArgs: split at top-level commas up to the closing parenthesis."""
    args: list[str] = []
    sub = query[args_index:]
    depth = 0
    last = 1
    for m in re.finditer(r"\(|\)|,", sub):
        token, end = m.group(), m.end()
        if token == "(":
            depth += 1
        elif token == ")":
            depth -= 1
        if token == "," and depth == 1:
            args.append(sub[last:end - 1])
            last = end
        if depth == 0:
            args.append(sub[last:end - 1])
            return args
    return []


def _js_string(value: Value | None) -> str | None:
    """``value.toString()`` as the plugin calls it on a variable's current value."""
    if value is None:
        return None
    return ",".join(value) if isinstance(value, list) else value


def conditional_all(sql: str, variables: Mapping[str, Value]) -> str:
    index = sql.rfind(_CONDITIONAL)
    while index != -1:
        params = macro_args(sql, index + len(_CONDITIONAL) - 1)
        if len(params) != 2:
            return sql  # the plugin gives up on the whole query and leaves it as it is
        phrase = params[0]
        var = _VAR_IN_ARG.search(params[1].strip())
        if var and _js_string(variables.get(var.group())) in ("", ALL):
            phrase = "1=1"
        whole = f"{_CONDITIONAL}{params[0]},{params[1]})"
        if whole not in sql:
            raise MacroError(f"unbalanced $__conditionalAll near {sql[index:index + 60]!r}")
        sql = sql.replace(whole, phrase, 1)
        index = sql.rfind(_CONDITIONAL)
    return sql


# --- 2. template variables (Grafana) --------------------------------------------------------

def _quote(values: Sequence[str], q: str, escape: str) -> str:
    return ",".join(f"{q}{v.replace(q, escape)}{q}" for v in values)


FORMATS: dict[str, Callable[[Value], str]] = {
    "singlequote": lambda v: _quote(v if isinstance(v, list) else [v], "'", "\\'"),
    "doublequote": lambda v: _quote(v if isinstance(v, list) else [v], '"', '\\"'),
    "sqlstring": lambda v: _quote(v if isinstance(v, list) else [v], "'", "''"),
    "csv": lambda v: ",".join(v) if isinstance(v, list) else v,
    "raw": lambda v: ",".join(v) if isinstance(v, list) else v,
    "pipe": lambda v: "|".join(v) if isinstance(v, list) else v,
    "percentencode": lambda v: _encode_uri_component_strict("{" + ",".join(v) + "}" if isinstance(v, list) else v),
}


def _encode_uri_component_strict(v: str) -> str:
    """Grafana's encodeURIComponentStrict: encodeURIComponent, then ``!'()*`` as well."""
    from urllib.parse import quote

    return quote(v, safe="-_.~")


def _queryparam(name: str, v: Value) -> str:
    """Grafana's ``queryparam`` format: ``var-<name>=<value>`` per value, joined by ``&``."""
    return "&".join(f"var-{name}={_encode_uri_component_strict(x)}" for x in (v if isinstance(v, list) else [v]))


def _plugin_format(value: Value) -> str:
    """The ClickHouse data source's own format: lists quoted and joined, single values raw."""
    return "'" + "','".join(value) + "'" if isinstance(value, list) else value


def _builtin(name: str, from_ms: int, to_ms: int, interval_s: float) -> str | None:
    return {"__from": str(from_ms), "__to": str(to_ms), "__interval_ms": str(int(interval_s * 1000)),
            "__interval": f"{int(interval_s)}s", "__range_ms": str(to_ms - from_ms),
            "__range_s": str((to_ms - from_ms) // 1000), "__range": f"{(to_ms - from_ms) // 1000}s"}.get(name)


def interpolate(sql: str, variables: Mapping[str, Value], all_values: Mapping[str, Sequence[str]], *,
                from_ms: int, to_ms: int, interval_s: float) -> str:
    def replace(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2) or m.group(4)
        fmt = m.group(3) or m.group(6)
        if m.group(5):
            raise MacroError(f"field paths are not supported here: {m.group()}")
        if name in variables:
            value = variables[name]
            if value == ALL or value == [ALL]:
                if name not in all_values:
                    raise MacroError(f"${name} is All: pass its options in all_values")
                value = list(all_values[name])
        else:
            value = _builtin(name, from_ms, to_ms, interval_s)
            if value is None:
                return m.group()  # Grafana leaves names it does not know (macros among them)
        if fmt is None:
            return _plugin_format(value)
        if fmt == "queryparam":
            return _queryparam(name, value)
        if fmt not in FORMATS:
            raise MacroError(f"format {fmt!r} of {m.group()} is not emulated")
        return FORMATS[fmt](value)

    return VARIABLE_RE.sub(replace, sql)


# --- 3. backend macros (sqlutil.Interpolate + pkg/macros) -------------------------------------

def _seconds(ms: int) -> int:
    return ms // 1000  # Go's time.Unix() of a positive instant


def _date(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d")  # Grafana's server runs in UTC


def _needs(args: list[str], n: int, name: str) -> list[str]:
    if len(args) != n:
        raise MacroError(f"$__{name}: expected {n} argument(s), received {len(args)}")
    return args


def _macro(name: str, args: list[str], from_ms: int, to_ms: int, interval_s: float) -> str:
    f_s, t_s = _seconds(from_ms), _seconds(to_ms)
    if name == "fromTime":
        return f"toDateTime({f_s})"
    if name == "toTime":
        return f"toDateTime({t_s})"
    if name == "fromTime_ms":
        return f"fromUnixTimestamp64Milli({from_ms})"
    if name == "toTime_ms":
        return f"fromUnixTimestamp64Milli({to_ms})"
    if name == "timeFilter":
        (c,) = _needs(args, 1, name)
        return f"{c} >= toDateTime({f_s}) AND {c} <= toDateTime({t_s})"
    if name == "timeFilter_ms":
        (c,) = _needs(args, 1, name)
        return f"{c} >= fromUnixTimestamp64Milli({from_ms}) AND {c} <= fromUnixTimestamp64Milli({to_ms})"
    if name == "dateFilter":
        (c,) = _needs(args, 1, name)
        return f"{c} >= toDate('{_date(from_ms)}') AND {c} <= toDate('{_date(to_ms)}')"
    if name in ("dateTimeFilter", "dt"):
        d, t = _needs(args, 2, name)
        return (f"({d} >= toDate('{_date(from_ms)}') AND {d} <= toDate('{_date(to_ms)}')) AND "
                f"({t} >= toDateTime({f_s}) AND {t} <= toDateTime({t_s}))")
    if name == "timeInterval":
        (c,) = _needs(args, 1, name)
        return f"toStartOfInterval(toDateTime({c}), INTERVAL {int(max(interval_s, 1))} second)"
    if name == "timeInterval_ms":
        (c,) = _needs(args, 1, name)
        return f"toStartOfInterval(toDateTime64({c}, 3), INTERVAL {int(max(interval_s * 1000, 1))} millisecond)"
    if name == "interval_s":
        return str(int(max(interval_s, 1)))
    raise MacroError(f"unknown macro $__{name}")


def _matches(sql: str, name: str) -> list[tuple[str, list[str]]]:
    """sqlutil.getMacroMatches for one macro name, refusing the argument-swallowing case."""
    out = []
    head = f"$__{name}"
    for m in re.finditer(re.escape(head) + r"\b", sql):
        rest = sql[m.start():]
        depth, arg_start, end = 0, 0, 0
        for i, ch in enumerate(rest):
            if depth == 0 and end > 0:
                break
            if ch == "(":
                depth += 1
                arg_start = arg_start or i + 1
            elif ch == ")":
                if depth == 0:
                    end = 0
                    break
                depth -= 1
                end = i + 1
        if arg_start and arg_start != len(head) + 1:
            raise MacroError(f"{head} is followed by {rest[len(head):arg_start].strip()!r}: the plugin would take "
                             "that parenthesis as its arguments; wrap the macro in parentheses")
        if arg_start and not end:
            raise MacroError(f"{head}( is not closed")
        text = rest[:end] if end else head
        args = text[arg_start:end - 1] if arg_start else ""
        out.append((text, [a.strip() for a in args.split(",")]))
    return out


def backend_macros(sql: str, *, from_ms: int, to_ms: int, interval_s: float) -> str:
    for name in SDK_DEFAULT_MACROS:
        if re.search(re.escape(f"$__{name}") + r"\b", sql):
            raise MacroError(f"$__{name} is sqlutil's generic macro, not the ClickHouse plugin's")
    for name in BACKEND_MACROS:
        for text, args in _matches(sql, name):
            sql = sql.replace(text, _macro(name, args, from_ms, to_ms, interval_s))
    return sql
