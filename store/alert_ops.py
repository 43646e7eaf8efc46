"""The store's answers to the alert ops of store.query: rules added, listed, deleted; alerts fired.

Rules from config (`[store] alert_*`, ids config-keywords, config-regex, config-silence) are
loaded at start and cannot be deleted through the API; rules added through it are kept in
SQLite (`alert_rules`) and loaded again after a restart.
"""
from __future__ import annotations

import json
import logging
import sqlite3

from bus.store_query import Query, Reply
from store.alerts import AlertRuleError, Alerts, Rule

log = logging.getLogger(__name__)
CONFIG_PREFIX = "config-"


def config_rules(cfg) -> list[Rule]:
    rules = []
    if cfg.alert_keywords:
        rules.append(Rule("config-keywords", keywords=tuple(cfg.alert_keywords)))
    if cfg.alert_regex:
        rules.append(Rule("config-regex", regex=cfg.alert_regex))
    if cfg.alert_silence_min:
        rules.append(Rule("config-silence", silence_min=cfg.alert_silence_min))
    return rules


def load(alerts: Alerts, conn: sqlite3.Connection, cfg) -> None:
    """Config rules (a bad regex stops the store with its message), then the stored ones."""
    for rule in config_rules(cfg):
        rule.pattern()
        alerts.add(rule)
    for ident, body in conn.execute("SELECT id, body FROM alert_rules"):
        try:
            alerts.add(Rule.parse(json.loads(body)))
        except (AlertRuleError, ValueError) as exc:
            log.error("stored alert rule skipped", extra={"rule": ident, "error": str(exc)})


def _add(alerts: Alerts, conn: sqlite3.Connection, args: dict) -> Reply:
    rule = Rule.parse(args)
    if rule.id.startswith(CONFIG_PREFIX):
        raise AlertRuleError(f"id = {rule.id!r}: ids starting {CONFIG_PREFIX!r} belong to rules set in config")
    alerts.add(rule)
    with conn:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO alert_rules (id, body) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET body = "
                     "excluded.body", (rule.id, json.dumps(rule.body())))
    return Reply(200, rule.body())


def _delete(alerts: Alerts, conn: sqlite3.Connection, args: dict) -> Reply:
    ident = args.get("id")
    if isinstance(ident, str) and ident.startswith(CONFIG_PREFIX):
        return Reply(400, error=f"id = {ident!r}: a rule set in config is removed in config")
    if not isinstance(ident, str) or not alerts.remove(ident):
        return Reply(404, error=f"no alert rule {ident!r:.40}")
    with conn:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("DELETE FROM alert_rules WHERE id = ?", (ident,))
    return Reply(200, {"deleted": ident})


def _fired(conn: sqlite3.Connection, args: dict, max_page: int) -> Reply:
    limit = args.get("limit", 100)
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= max_page:
        return Reply(400, error=f"limit = {limit!r:.20}: expected 1 to {max_page}")
    where, params = [], []
    for name in ("rule", "stream"):
        if args.get(name):
            where.append(f"{name} = ?")
            params.append(str(args[name]))
    rows = conn.execute(f"SELECT id, rule, kind, stream, final_id, worker, seq, text, terms, wall FROM alerts "
                        f"{'WHERE ' + ' AND '.join(where) if where else ''} ORDER BY id DESC LIMIT ?",
                        [*params, limit])
    return Reply(200, {"alerts": [{**dict(r), "terms": json.loads(r["terms"] or "[]")} for r in rows]})


def answer(alerts: Alerts, conn: sqlite3.Connection, query: Query, max_page: int) -> Reply:
    try:
        if query.op == "alerts_add":
            return _add(alerts, conn, query.args)
        if query.op == "alerts_delete":
            return _delete(alerts, conn, query.args)
        if query.op == "alerts_fired":
            return _fired(conn, query.args, max_page)
        return Reply(200, {"rules": [rule.body() for rule in alerts.rules.values()]})
    except AlertRuleError as exc:
        return Reply(400, error=str(exc))
