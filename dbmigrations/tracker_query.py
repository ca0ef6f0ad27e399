"""The one query the schema tracker (:mod:`dbmigrations.tracker`) reads the catalogs with.

Its rows: a head (the new horizon, and how many objects of each counted kind the database holds), then
for each relation, function, type, schema or extension read, its snapshot entries with the same
definitions as :mod:`dbmigrations.snapshot` prints. Three texts of it: everything; what changed since
the horizon, found by scanning every catalog's user rows; what changed, the relations given by the
caller (only the small catalogs scanned).
"""

from __future__ import annotations

from .snapshot import (
    COLUMN_DEFINITION,
    COLUMN_OWNER_KINDS,
    FUNCTION_DEFINITION,
    FUNCTION_NAME,
    RELATION_KINDS,
    TYPE_DEFINITION,
    TYPE_IS_STANDALONE,
)

TRACKED_RELATIONS = "('r', 'p', 'v', 'm', 'S', 'f', 'i', 'I')"
# User objects have oids from FirstNormalObjectId (16384) on: PostgreSQL's own rows are not scanned.
FIRST_USER_OID = 16384
SINCE = "(SELECT a FROM since)"
USER_SCHEMAS = "(SELECT oids FROM ns)::oid[]"
# One pass over each catalog's user rows: the rows written since the horizon (an xmin newer than it:
# created or updated), and how many objects of each counted kind there are.
SCANS = {
    "cls": f"""
    SELECT array_agg(oid) FILTER (WHERE age(xmin) <= {SINCE}) AS changed,
           count(*) FILTER (WHERE relkind IN {TRACKED_RELATIONS} AND relnamespace = ANY({USER_SCHEMAS})) AS n,
           count(*) FILTER (WHERE relkind = 'c' AND relnamespace = ANY({USER_SCHEMAS})) AS composites
    FROM pg_class WHERE oid >= {FIRST_USER_OID}""",
    # The largest catalog: read straight through (attrelid::int8 keeps its index out of it).
    "att": f"""
    SELECT array_agg(DISTINCT attrelid) AS changed FROM pg_attribute
    WHERE attrelid::int8 >= {FIRST_USER_OID} AND age(xmin) <= {SINCE}""",
    "def": f"""
    SELECT array_agg(adrelid) AS changed FROM pg_attrdef WHERE oid >= {FIRST_USER_OID} AND age(xmin) <= {SINCE}""",
    "idx": f"""
    SELECT array_agg(indexrelid) AS changed FROM pg_index
    WHERE indexrelid >= {FIRST_USER_OID} AND age(xmin) <= {SINCE}""",
    "con": f"""
    SELECT array_agg(conrelid) FILTER (WHERE age(xmin) <= {SINCE}) AS changed,
           count(*) FILTER (WHERE conrelid <> 0 AND connamespace = ANY({USER_SCHEMAS})) AS n
    FROM pg_constraint WHERE oid >= {FIRST_USER_OID}""",
    "trg": f"""
    SELECT array_agg(t.tgrelid) FILTER (WHERE age(t.xmin) <= {SINCE}) AS changed,
           count(*) FILTER (WHERE NOT t.tgisinternal AND c.relnamespace = ANY({USER_SCHEMAS})) AS n
    FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid WHERE t.oid >= {FIRST_USER_OID}""",
    "fnc": f"""
    SELECT array_agg(oid) FILTER (WHERE age(xmin) <= {SINCE}) AS changed,
           count(*) FILTER (WHERE prokind IN ('f', 'p') AND pronamespace = ANY({USER_SCHEMAS})) AS n
    FROM pg_proc WHERE oid >= {FIRST_USER_OID}""",
    "typ": f"""
    SELECT array_agg(oid) FILTER (WHERE age(xmin) <= {SINCE}) AS changed,
           count(*) FILTER (WHERE typtype IN ('e', 'd') AND typnamespace = ANY({USER_SCHEMAS})) AS n
    FROM pg_type WHERE oid >= {FIRST_USER_OID}""",
    "enm": f"""
    SELECT array_agg(DISTINCT enumtypid) AS changed FROM pg_enum
    WHERE oid >= {FIRST_USER_OID} AND age(xmin) <= {SINCE}""",
    "nsp": f"""
    SELECT array_agg(oid) FILTER (WHERE age(xmin) <= {SINCE}) AS changed,
           count(*) FILTER (WHERE oid = ANY({USER_SCHEMAS})) AS n
    FROM pg_namespace""",
    "ext": f"""
    SELECT array_agg(oid) FILTER (WHERE age(xmin) <= {SINCE}) AS changed, count(*) AS n FROM pg_extension""",
}
# The catalogs of relations and their parts, the largest ones. When the step's locks name the relations it
# changed (every change to a relation locks it), they are not scanned: these stand in for them.
NOT_SCANNED = {
    "cls": "SELECT NULL::oid[] AS changed, 0 AS n, 0 AS composites",
    "att": "SELECT NULL::oid[] AS changed",
    "def": "SELECT NULL::oid[] AS changed",
    "idx": "SELECT NULL::oid[] AS changed",
    "con": "SELECT NULL::oid[] AS changed, 0 AS n",
    "trg": "SELECT NULL::oid[] AS changed, 0 AS n",
}
# Then, by oid (index lookups): the units those rows belong to, the units asked for, and the dependents of
# the units renamed; and the definitions of them all.
READ = f"""
WITH ns AS MATERIALIZED (
    SELECT array_agg(oid) AS oids FROM pg_namespace
    WHERE nspname <> 'information_schema' AND NOT starts_with(nspname, 'pg_')),
since AS MATERIALIZED (
    SELECT CASE WHEN %(horizon)s::text IS NULL THEN NULL ELSE age(%(horizon)s::text::xid) END AS a),
{{SCANS}},
dep AS MATERIALIZED (
    SELECT classid, objid FROM pg_depend
    WHERE refclassid = 'pg_class'::regclass AND refobjid = ANY(%(dep_rel)s::oid[])
    UNION SELECT classid, objid FROM pg_depend
    WHERE refclassid = 'pg_proc'::regclass AND refobjid = ANY(%(dep_func)s::oid[])
    UNION SELECT classid, objid FROM pg_depend
    WHERE refclassid = 'pg_type'::regclass AND refobjid = ANY(%(dep_type)s::oid[])
    UNION SELECT classid, objid FROM pg_depend
    WHERE refclassid = 'pg_namespace'::regclass AND refobjid = ANY(%(dep_schema)s::oid[])),
touched AS MATERIALIZED (
    SELECT cls.changed || att.changed || def.changed || idx.changed || con.changed || trg.changed
           || %(rel)s::oid[] || ARRAY(
               SELECT objid FROM dep WHERE classid = 'pg_class'::regclass
               UNION ALL SELECT conrelid FROM pg_constraint
               WHERE oid = ANY(ARRAY(SELECT objid FROM dep WHERE classid = 'pg_constraint'::regclass))
               UNION ALL SELECT tgrelid FROM pg_trigger
               WHERE oid = ANY(ARRAY(SELECT objid FROM dep WHERE classid = 'pg_trigger'::regclass))
               UNION ALL SELECT adrelid FROM pg_attrdef
               WHERE oid = ANY(ARRAY(SELECT objid FROM dep WHERE classid = 'pg_attrdef'::regclass))
               UNION ALL SELECT ev_class FROM pg_rewrite
               WHERE oid = ANY(ARRAY(SELECT objid FROM dep WHERE classid = 'pg_rewrite'::regclass))) AS oids
    FROM cls, att, def, idx, con, trg),
wanted AS MATERIALIZED (  -- with the indexes and owned sequences of those relations, composite types' types
    SELECT t.oids || ARRAY(SELECT indexrelid FROM pg_index WHERE indrelid = ANY(t.oids))
                  || ARRAY(SELECT objid FROM pg_depend WHERE refclassid = 'pg_class'::regclass
                           AND refobjid = ANY(t.oids) AND classid = 'pg_class'::regclass AND deptype IN ('a', 'i'))
           AS rels,
           fnc.changed || %(func)s::oid[] || ARRAY(SELECT objid FROM dep WHERE classid = 'pg_proc'::regclass)
           AS funcs,
           typ.changed || enm.changed || %(type)s::oid[]
           || ARRAY(SELECT objid FROM dep WHERE classid = 'pg_type'::regclass)
           || ARRAY(SELECT reltype FROM pg_class WHERE oid = ANY(t.oids) AND relkind = 'c') AS types,
           nsp.changed || %(schema)s::oid[] AS schemas, ext.changed || %(ext)s::oid[] AS exts
    FROM touched t, fnc, typ, enm, nsp, ext),
rel AS MATERIALIZED (
    SELECT c.oid, c.relname, c.relkind, c.relfilenode, c.relispartition, n.nspname
    FROM wanted w, ns, pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN {TRACKED_RELATIONS} AND c.relnamespace = ANY(ns.oids) AND ({{ALL}} OR c.oid = ANY(w.rels))),
fn AS MATERIALIZED (
    SELECT p.oid, p.proname, n.nspname FROM wanted w, ns, pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE p.prokind IN ('f', 'p') AND p.pronamespace = ANY(ns.oids) AND ({{ALL}} OR p.oid = ANY(w.funcs))),
tp AS MATERIALIZED (
    SELECT t.oid, t.typname, t.typtype, n.nspname
    FROM wanted w, ns, pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
    WHERE {TYPE_IS_STANDALONE} AND t.typnamespace = ANY(ns.oids) AND ({{ALL}} OR t.oid = ANY(w.types))),
sch AS MATERIALIZED (
    SELECT n.oid, n.nspname FROM wanted w, ns, pg_namespace n
    WHERE n.oid = ANY(ns.oids) AND ({{ALL}} OR n.oid = ANY(w.schemas))),
xt AS MATERIALIZED (
    SELECT e.oid, e.extname, e.extversion FROM wanted w, pg_extension e WHERE {{ALL}} OR e.oid = ANY(w.exts))
SELECT '_head', NULL::oid, NULL::name, pg_snapshot_xmax(pg_current_snapshot())::text,
       concat_ws(',', cls.n, con.n, trg.n, fnc.n, typ.n + cls.composites, nsp.n, ext.n),
       NULL, NULL::"char", NULL::oid, NULL::oid
FROM cls, con, trg, fnc, typ, nsp, ext
UNION ALL
SELECT '_rel', r.oid, r.nspname, format('%%I.%%I', r.nspname, r.relname), NULL, r.relname, r.relkind,
       r.relfilenode, CASE
         WHEN r.relkind IN ('i', 'I') THEN (SELECT indrelid FROM pg_index WHERE indexrelid = r.oid)
         WHEN r.relkind = 'S' THEN (SELECT refobjid FROM pg_depend WHERE classid = 'pg_class'::regclass
           AND objid = r.oid AND refclassid = 'pg_class'::regclass AND deptype IN ('a', 'i') LIMIT 1)
         WHEN r.relispartition THEN pg_partition_root(r.oid) END
FROM rel r
UNION ALL
SELECT 'tables', r.oid, r.nspname, r.relname, r.relkind::text, NULL, NULL, NULL, NULL
FROM rel r WHERE r.relkind IN {RELATION_KINDS}
UNION ALL
SELECT 'columns', r.oid, r.nspname, r.relname || '.' || a.attname, {COLUMN_DEFINITION}, NULL, NULL, NULL, NULL
FROM rel r JOIN pg_attribute a ON a.attrelid = r.oid
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE r.relkind IN {COLUMN_OWNER_KINDS} AND a.attnum > 0 AND NOT a.attisdropped
UNION ALL
SELECT 'constraints', r.oid, r.nspname, r.relname || '.' || x.conname, pg_get_constraintdef(x.oid),
       NULL, NULL, NULL, NULL
FROM rel r JOIN pg_constraint x ON x.conrelid = r.oid
UNION ALL
SELECT 'indexes', r.oid, r.nspname, r.relname, pg_get_indexdef(r.oid), NULL, NULL, NULL, NULL
FROM rel r JOIN pg_index x ON x.indexrelid = r.oid JOIN pg_class t ON t.oid = x.indrelid
WHERE t.relkind IN ('r', 'm', 'p')
UNION ALL
SELECT 'triggers', r.oid, r.nspname, r.relname || '.' || x.tgname, pg_get_triggerdef(x.oid), NULL, NULL, NULL, NULL
FROM rel r JOIN pg_trigger x ON x.tgrelid = r.oid WHERE NOT x.tgisinternal
UNION ALL
SELECT 'functions', p.oid, p.nspname, {FUNCTION_NAME}, {FUNCTION_DEFINITION}, p.proname, NULL, NULL, NULL
FROM fn p
UNION ALL
SELECT 'types', t.oid, t.nspname, t.typname, {TYPE_DEFINITION}, t.typname, NULL, NULL, NULL FROM tp t
UNION ALL
SELECT 'schemas', oid, nspname, nspname, '', nspname, NULL, NULL, NULL FROM sch
UNION ALL
SELECT 'extensions', oid, NULL, extname, extversion, extname, NULL, NULL, NULL FROM xt
"""


def _read_query(*, everything: bool, scan_relations: bool) -> str:
    scans = {name: NOT_SCANNED.get(name, body) if not scan_relations else body for name, body in SCANS.items()}
    ctes = ",\n".join(f"{name} AS MATERIALIZED ({body})" for name, body in scans.items())
    return READ.replace("{SCANS}", ctes).replace("{ALL}", "true" if everything else "false")


# Three texts rather than parameters, so that the server plans each for what it does: everything; what
# changed, found by scanning every catalog (and counting the objects); what changed, the relations given.
READ_ALL = _read_query(everything=True, scan_relations=True)
READ_SCANNING = _read_query(everything=False, scan_relations=True)
READ_GIVEN = _read_query(everything=False, scan_relations=False)
COUNTED = ("rel", "constraints", "triggers", "func", "type", "schema", "ext")  # the order of the head's counts
