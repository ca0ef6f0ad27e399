"""The SQL statements inside a ``DO`` block, and whether a guard encloses them.

PostgreSQL's PL/pgSQL grammar (pglast ``parse_plpgsql_json``) gives the block's
statements with line numbers; each embedded SQL statement is then parsed like a
top-level one. A statement is *guarded* when an ``IF`` whose condition looks the
object up (EXISTS, ``to_regclass()``, the catalogs) or a ``duplicate_*``/``undefined_*``
exception handler encloses it: the spec's idempotent ``DO $$ … IF NOT EXISTS …`` idiom.
"""

from __future__ import annotations

from ..statements import libpg
from . import nodes
from .nodes import Stmt


class BodyError(Exception):
    """The DO block's body is not valid PL/pgSQL."""


def expand(lint_file, do: Stmt) -> list[Stmt]:
    """The statements inside the DO block ``do`` of ``lint_file``, in order."""
    args = {a["DefElem"]["defname"]: a["DefElem"].get("arg") for a in do.fields.get("args") or () if "DefElem" in a}
    if (nodes.names([args.get("language") or {}]) or ["plpgsql"])[0].lower() != "plpgsql" or "as" not in args:
        return []
    body = nodes.names([args["as"]])[0]
    found = lint_file.text.find(body, do.start, do.end)
    body_offset = found if found >= 0 else do.start
    tag = "$lint$"
    while tag in body:
        tag = tag[:-1] + "_$"
    parser, loads = libpg()
    try:
        tree = loads(
            parser.parse_plpgsql_json(
                f"CREATE FUNCTION pg_temp.lint_do() RETURNS void LANGUAGE plpgsql AS {tag}{body}{tag}"
            )
        )
    except parser.ParseError as error:
        raise BodyError(error.args[0] if error.args else str(error)) from None
    walker = _Walker(lint_file, do, lint_file.position(body_offset)[0])
    for function in tree:
        action = function.get("PLpgSQL_function", {}).get("action", {})
        walker.visit([action], False)
    return walker.found


def _guarding_handler(block: dict) -> bool:
    handlers = (block.get("exceptions") or {}).get("PLpgSQL_exception_block", {}).get("exc_list") or ()
    for handler in handlers:
        for condition in handler.get("PLpgSQL_exception", {}).get("conditions") or ():
            name = condition.get("PLpgSQL_condition", {}).get("condname", "")
            if name == "others" or name.startswith(("duplicate_", "undefined_")):
                return True
    return False


def _query(expr: dict) -> str:
    return (expr or {}).get("PLpgSQL_expr", {}).get("query", "")


class _Walker:
    def __init__(self, lint_file, do: Stmt, first_line: int):
        self.file, self.do, self.first_line = lint_file, do, first_line
        self.found: list[Stmt] = []

    def visit(self, items, guarded: bool) -> None:
        for item in items or ():
            if not isinstance(item, dict) or len(item) != 1:
                continue
            ((kind, fields),) = item.items()
            if not isinstance(fields, dict):
                continue
            if kind == "PLpgSQL_stmt_execsql":
                self.emit(_query(fields.get("sqlstmt")), fields.get("lineno"), guarded)
            elif kind == "PLpgSQL_stmt_dynexecute":
                self.emit(_literal(_query(fields.get("query"))), fields.get("lineno"), guarded)
            elif kind == "PLpgSQL_stmt_if":
                conditions = [_query(fields.get("cond"))]
                conditions += [
                    _query(e.get("PLpgSQL_if_elsif", {}).get("cond")) for e in fields.get("elsif_list") or ()
                ]
                inner = guarded or any(nodes.is_existence_check(c) for c in conditions if c)
                self.visit(fields.get("then_body"), inner)
                for branch in fields.get("elsif_list") or ():
                    self.visit(branch.get("PLpgSQL_if_elsif", {}).get("stmts"), inner)
                self.visit(fields.get("else_body"), inner)
            elif kind == "PLpgSQL_stmt_block":
                self.visit(fields.get("body"), guarded or _guarding_handler(fields))
                handlers = (fields.get("exceptions") or {}).get("PLpgSQL_exception_block", {}).get("exc_list")
                for handler in handlers or ():
                    self.visit(handler.get("PLpgSQL_exception", {}).get("action"), guarded)
            else:  # loops, CASE: visit whatever statement lists they hold
                for value in fields.values():
                    if isinstance(value, list):
                        self.visit(value, guarded)

    def emit(self, query: str, lineno: int | None, guarded: bool) -> None:
        if not query:
            return
        line_start = self.file.line_offset(self.first_line + (lineno or 1) - 1)
        found = self.file.text.find(query, line_start, self.do.end)
        start = (
            found
            if found >= 0
            else line_start + len(self.file.text[line_start:]) - len(self.file.text[line_start:].lstrip(" \t"))
        )
        # A query that does not parse gives nothing: the server parses it when the block runs.
        for raw in nodes.parse(query):
            kind, fields = nodes.kind_of(raw["stmt"])
            self.found.append(Stmt(kind, fields, start, start + len(query), guarded, True))


def _literal(expression: str) -> str:
    """The SQL of ``EXECUTE 'CREATE …'`` when the argument is a plain string literal."""
    try:
        targets = nodes.parse("SELECT " + expression)[0]["stmt"]["SelectStmt"]["targetList"]
    except (KeyError, IndexError):
        return ""
    value = targets[0].get("ResTarget", {}).get("val", {}) if len(targets) == 1 else {}
    return value.get("A_Const", {}).get("sval", {}).get("sval", "")
