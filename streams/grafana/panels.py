"""Small builders for Grafana's dashboard JSON model (schemaVersion 39): targets, variables,
panels and a row layout, so streams/grafana/dashboards.py reads as what each board shows.

Plain dicts on purpose: the JSON model is Grafana's contract, and a builder library would
only add a second vocabulary to learn (grafanalib is unmaintained). Every query goes to the
provisioned ClickHouse data source by uid (grafana/provisioning/datasources/clickhouse.yaml)
through the grafana-clickhouse-datasource plugin (v4 query model).
"""
from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from typing import Any, Literal

Json = dict[str, Any]

#: The provisioned data source; panels, variables and annotations name it by uid, never by name.
DATASOURCE: dict[str, str] = {"type": "grafana-clickhouse-datasource", "uid": "ccpulse-clickhouse"}
#: Marks targets as v4 queries, so the plugin's v3 migration leaves them as they are.
PLUGIN_VERSION = "4.0.0"
SCHEMA_VERSION = 39
#: sqlutil's format codes: 0 turns long results into wide time series, 1 keeps a table.
FORMATS = {"timeseries": 0, "table": 1}

Format = Literal["timeseries", "table"]


def target(sql: str, *, ref: str = "A", fmt: Format = "table") -> Json:
    """One SQL query of the ClickHouse plugin (editor type sql)."""
    return {"datasource": dict(DATASOURCE), "editorType": "sql", "format": FORMATS[fmt],
            "pluginVersion": PLUGIN_VERSION, "queryType": fmt, "rawSql": sql.strip(), "refId": ref}


def thresholds(base: str, *steps: tuple[float, str]) -> Json:
    """Absolute thresholds: ``base`` below the first step, then each (value, colour)."""
    return {"mode": "absolute",
            "steps": [{"color": base, "value": None}, *({"color": c, "value": v} for v, c in steps)]}


def field_config(*, unit: str | None = None, decimals: int | None = None, min_: float | None = None,
                 max_: float | None = None, steps: Json | None = None, color_mode: str | None = None,
                 display_name: str | None = None, custom: Json | None = None,
                 mappings: list[Json] | None = None, overrides: list[Json] | None = None) -> Json:
    """fieldConfig with only the defaults that are set (Grafana fills in the rest)."""
    defaults: Json = {}
    for key, value in (("unit", unit), ("decimals", decimals), ("min", min_), ("max", max_),
                       ("thresholds", steps), ("displayName", display_name), ("custom", custom),
                       ("mappings", mappings)):
        if value is not None:
            defaults[key] = value
    if color_mode:
        defaults["color"] = {"mode": color_mode}
    return {"defaults": defaults, "overrides": overrides or []}


def override_color(name: str, color: str) -> Json:
    """A fixed colour for the field (series) called ``name``."""
    return {"matcher": {"id": "byName", "options": name},
            "properties": [{"id": "color", "value": {"fixedColor": color, "mode": "fixed"}}]}


def value_colors(colors: dict[str, str]) -> list[Json]:
    """Value mappings giving each text value (an agent state, an alert status) its colour."""
    return [{"type": "value", "options": {v: {"color": c, "index": i} for i, (v, c) in enumerate(colors.items())}}]


def rows_to_fields(name: str, value: str, *thresholds_from: tuple[str, str]) -> Json:
    """Grafana's "Rows to fields": one stat per row, each with its own thresholds from
    columns of that row (a queue's SL goal). Each (column, colour) adds a threshold step;
    list the lower one first, as Grafana appends the steps in column order."""
    mappings: list[Json] = [{"fieldName": name, "handlerKey": "field.name"},
                            {"fieldName": value, "handlerKey": "field.value"}]
    mappings += [{"fieldName": col, "handlerKey": "threshold1", "handlerArguments": {"threshold": {"color": c}}}
                 for col, c in thresholds_from]
    return {"id": "rowsToFields", "options": {"mappings": mappings}}


def _panel(kind: str, title: str, description: str, targets: Sequence[Json], fieldconfig: Json,
           options: Json, transformations: Iterable[Json] = ()) -> Json:
    return {"type": kind, "title": title, "description": description, "datasource": dict(DATASOURCE),
            "targets": list(targets), "fieldConfig": fieldconfig, "options": options,
            "transformations": list(transformations)}


def stat(title: str, description: str, targets: Sequence[Json], *, fieldconfig: Json | None = None,
         transformations: Iterable[Json] = (), color_mode: str = "background", text_size: int | None = None) -> Json:
    """Big numbers: one per numeric field (or per row after rows_to_fields)."""
    options: Json = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                     "orientation": "auto", "textMode": "value_and_name", "colorMode": color_mode,
                     "graphMode": "none", "justifyMode": "center", "wideLayout": True}
    if text_size:
        options["text"] = {"valueSize": text_size}
    return _panel("stat", title, description, targets, fieldconfig or field_config(), options, transformations)


def timeseries(title: str, description: str, targets: Sequence[Json], *, fieldconfig: Json | None = None,
               bars: bool = False, stacked: bool = False) -> Json:
    """Lines (or bars) over time; each query returns ``time`` first, ordered by it."""
    custom: Json = {"drawStyle": "bars" if bars else "line", "lineWidth": 2, "fillOpacity": 60 if bars or stacked else 10,
                    "showPoints": "never", "spanNulls": False, "stacking": {"mode": "normal" if stacked else "none",
                                                                              "group": "A"}}
    fc = fieldconfig or field_config()
    fc = copy.deepcopy(fc)
    fc["defaults"]["custom"] = {**custom, **fc["defaults"].get("custom", {})}
    options = {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
               "tooltip": {"mode": "multi", "sort": "none"}}
    return _panel("timeseries", title, description, targets, fc, options)


def table(title: str, description: str, targets: Sequence[Json], *, fieldconfig: Json | None = None,
          sort_by: str | None = None, desc: bool = True) -> Json:
    """Rows as they come; Inspect > Data > Download CSV exports any table panel."""
    options: Json = {"showHeader": True, "cellHeight": "sm", "footer": {"show": False, "reducer": ["sum"]}}
    if sort_by:
        options["sortBy"] = [{"displayName": sort_by, "desc": desc}]
    return _panel("table", title, description, targets, fieldconfig or field_config(), options)


def state_timeline(title: str, description: str, targets: Sequence[Json], *, fieldconfig: Json,
                   transformations: Iterable[Json] = ()) -> Json:
    """One lane per series, coloured by its (text) state."""
    options = {"mergeValues": True, "showValue": "never", "alignValue": "left", "rowHeight": 0.8,
               "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
               "tooltip": {"mode": "single", "sort": "none"}}
    return _panel("state-timeline", title, description, targets, fieldconfig, options, transformations)


def bargauge(title: str, description: str, targets: Sequence[Json], *, fieldconfig: Json | None = None) -> Json:
    """Horizontal bars, one per numeric field."""
    options = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
               "orientation": "horizontal", "displayMode": "basic", "showUnfilled": True,
               "valueMode": "color", "namePlacement": "auto", "sizing": "auto"}
    return _panel("bargauge", title, description, targets, fieldconfig or field_config(), options)


# --- variables ------------------------------------------------------------------------

def query_variable(name: str, label: str, sql: str, *, multi: bool = False, include_all: bool = False) -> Json:
    """Values from ClickHouse; chained variables reference the ones before them in ``sql``.
    The query model suits both the plugin's custom variable editor (rawSql) and its older
    metricFindQuery path."""
    sql = sql.strip()
    current = {"selected": True, "text": ["All"], "value": ["$__all"]} if include_all else {}  # else the first
    return {"name": name, "label": label, "type": "query", "datasource": dict(DATASOURCE),
            "query": {"refId": f"var-{name}", "queryType": "sql", "editorType": "sql", "format": 1, "rawSql": sql},
            "definition": sql, "refresh": 1, "sort": 1, "multi": multi, "includeAll": include_all,
            "current": current, "options": [], "hide": 0, "regex": "", "skipUrlSync": False}


def custom_variable(name: str, label: str, choices: Sequence[tuple[str, str]], default: str) -> Json:
    """A fixed list of (text, value) choices, e.g. the 15- or 30-minute view."""
    options = [{"text": t, "value": v, "selected": v == default} for t, v in choices]
    current = next({"text": o["text"], "value": o["value"]} for o in options if o["selected"])
    return {"name": name, "label": label, "type": "custom", "query": ",".join(f"{t} : {v}" for t, v in choices),
            "current": current, "options": options, "multi": False, "includeAll": False, "hide": 0,
            "skipUrlSync": False}


# --- layout and the dashboard -----------------------------------------------------------

Cell = tuple[Json, int, int]  # (panel, width in grid units of 24, height)


def layout(rows: Sequence[Sequence[Cell]]) -> list[Json]:
    """Place rows of panels left to right, top to bottom, and number them 1, 2, ..."""
    panels: list[Json] = []
    y = 0
    for row in rows:
        x = 0
        for panel, w, h in row:
            panels.append({"id": len(panels) + 1, "gridPos": {"h": h, "w": w, "x": x, "y": y}, **panel})
            x += w
        y += max(h for _, _, h in row)
    return panels


def annotation(name: str, sql: str, color: str = "red") -> Json:
    """Events from a query returning ``time`` (and optionally timeEnd), ``text`` and ``tags``."""
    return {"name": name, "datasource": dict(DATASOURCE), "enable": True, "hide": False, "iconColor": color,
            "target": target(sql, ref="Anno")}


BUILTIN_ANNOTATION: Json = {
    "builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"}, "enable": True, "hide": True,
    "iconColor": "rgba(0, 211, 255, 1)", "name": "Annotations & Alerts", "type": "dashboard",
    "target": {"limit": 100, "matchAny": False, "tags": [], "type": "dashboard"},
}


def dashboard(*, uid: str, title: str, description: str, tags: Sequence[str], panels: list[Json],
              variables: Sequence[Json], refresh: str, time_from: str,
              annotations: Sequence[Json] = ()) -> Json:
    """A complete dashboard; links to its sister boards (tag ccpulse) keep the variables and time."""
    return {
        "uid": uid, "title": title, "description": description, "tags": ["ccpulse", *tags],
        "timezone": "browser", "editable": False, "graphTooltip": 1, "fiscalYearStartMonth": 0,
        "liveNow": False, "schemaVersion": SCHEMA_VERSION, "version": 1, "refresh": refresh,
        "time": {"from": time_from, "to": "now"}, "timepicker": {},
        "links": [{"title": "ccpulse", "type": "dashboards", "tags": ["ccpulse"], "asDropdown": True,
                   "includeVars": True, "keepTime": True, "icon": "external link", "targetBlank": False,
                   "tooltip": "", "url": ""}],
        "annotations": {"list": [BUILTIN_ANNOTATION, *annotations]},
        "templating": {"list": list(variables)},
        "panels": panels,
    }
