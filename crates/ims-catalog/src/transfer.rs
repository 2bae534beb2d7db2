//! Moving a whole catalog from a single node's SQLite database into a PostgreSQL one (`ims admin migrate`).
//!
//! The SQLite side exports rows table by table ([`crate::sqlite::SqliteCatalog`]'s `export_page`), each
//! converted to the PostgreSQL column types as it is read (see [`ColumnKind`]); the PostgreSQL side
//! imports them with `ON CONFLICT (primary key) DO NOTHING` ([`crate::postgres::PostgresCatalog`]'s
//! `import_rows`), so a run that was interrupted resumes where it stopped. [`TABLES`] lists every copied
//! table in dependency order (parents before children); `tests/transfer.rs` checks it against both
//! dialects' migrated schemas, so a migration that adds a column without updating it fails the tests.

use chrono::{DateTime, Utc};

use crate::postgres::PostgresCatalog;
use crate::sqlite::SqliteCatalog;
use crate::{CatalogError, Result};

/// How a column is stored in each dialect, which decides its conversion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    /// TEXT in both.
    Text,
    /// TEXT (lowercase hyphenated) in SQLite, `uuid` in PostgreSQL.
    Uuid,
    /// INTEGER in SQLite, `bigint` in PostgreSQL.
    Integer,
    /// INTEGER 0/1 in SQLite, `boolean` in PostgreSQL.
    Boolean,
    /// REAL in SQLite, `double precision` in PostgreSQL.
    Real,
    /// JSON text in SQLite, `jsonb` in PostgreSQL.
    Json,
    /// RFC 3339 text with nine fraction digits in SQLite; in PostgreSQL a `timestamptz` (microseconds)
    /// plus a `<column>_ns` `smallint` with the nanoseconds below the microsecond.
    Time,
    /// RFC 3339 text in SQLite, a bare `timestamptz` in PostgreSQL (write-only times: `deleted_at`, ...).
    PlainTime,
}

/// One column as SQLite names it (PostgreSQL adds `<name>_ns` for a [`ColumnKind::Time`]).
#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub name: &'static str,
    pub kind: ColumnKind,
}

/// One copied table.
#[derive(Debug, Clone, Copy)]
pub struct Table {
    pub name: &'static str,
    /// The primary key's columns (the conflict target of the import).
    pub key: &'static [&'static str],
    pub columns: &'static [Column],
    /// A column referencing this table's own key (sub-jobs): rows where it is NULL are copied first.
    pub self_parent: Option<&'static str>,
    /// The key is a PostgreSQL identity column, advanced past the copied values after the copy.
    pub identity: bool,
    /// Columns that never change once a row is written: a target row with the same key and other values
    /// there belongs to another deployment.
    pub immutable: &'static [&'static str],
    /// Unique columns besides the key: a target row with the same value under another key also belongs to
    /// another deployment.
    pub unique: &'static [&'static str],
}

const fn c(name: &'static str, kind: ColumnKind) -> Column {
    Column { name, kind }
}

const fn table(name: &'static str, key: &'static [&'static str], columns: &'static [Column]) -> Table {
    Table { name, key, columns, self_parent: None, identity: false, immutable: &[], unique: &[] }
}

use ColumnKind::{Boolean as B, Integer as I, Json as J, PlainTime as P, Real as R, Text as T, Time as TS, Uuid as U};

/// Every copied table, parents before children.
pub const TABLES: &[Table] = &[
    Table {
        immutable: &["created_at"],
        unique: &["name"],
        ..table("projects", &["id"], &[c("id", T), c("name", T), c("created_at", TS)])
    },
    Table {
        immutable: &["created_at"],
        unique: &["name"],
        ..table("users", &["id"], &[c("id", T), c("name", T), c("created_at", TS)])
    },
    table("role_assignments", &["user_id", "project_id"], &[c("user_id", T), c("project_id", T), c("role", T)]),
    Table {
        immutable: &["secret_hash", "user_id", "project_id", "created_at"],
        ..table(
            "tokens",
            &["id"],
            &[
                c("id", T), c("secret_hash", T), c("user_id", T), c("project_id", T), c("created_at", TS),
                c("expires_at", TS), c("revoked", B),
            ],
        )
    },
    Table {
        immutable: &["user_id", "sealed_secret", "created_at"],
        ..table(
            "access_keys",
            &["id"],
            &[
                c("id", T), c("user_id", T), c("project_id", T), c("sealed_secret", T), c("description", T),
                c("created_at", TS), c("revoked", B),
            ],
        )
    },
    table("project_quotas", &["project_id", "resource"], &[c("project_id", T), c("resource", T), c("quota", I)]),
    Table {
        immutable: &["sealed_material", "created_at"],
        unique: &["alias"],
        ..table(
            "kms_keys",
            &["id"],
            &[
                c("id", T), c("alias", T), c("description", T), c("state", T), c("sealed_material", T),
                c("created_at", TS), c("updated_at", TS), c("shareable", B),
            ],
        )
    },
    Table {
        immutable: &["wrapped_data_key"],
        ..table(
            "encryption_domains",
            &["project_id", "key_id"],
            &[c("project_id", T), c("key_id", T), c("wrapped_data_key", T), c("created_at", P)],
        )
    },
    table(
        "os_versions",
        &["os_version_key"],
        &[c("os_version_key", T), c("platform", T), c("os_version", T), c("os_bit", I), c("os_type", T), c("created_at", P)],
    ),
    Table {
        immutable: &["owner", "created_at"],
        ..table(
            "images",
            &["id"],
            &[
                c("id", U), c("name", T), c("status", T), c("visibility", T), c("protected", B), c("os_hidden", B),
                c("owner", T), c("disk_format", T), c("container_format", T), c("min_disk", I), c("min_ram", I),
                c("size", I), c("virtual_size", I), c("checksum", T), c("os_hash_algo", T), c("os_hash_value", T),
                c("manifest_id", T), c("created_at", TS), c("updated_at", TS), c("deleted_at", P),
                c("deprecate_at", TS), c("binned_status", T), c("bin_purge_after", TS), c("source_type", T),
                c("source_ref", T), c("parent_id", U), c("extra_stores", T),
                c("in_default_store", B),
            ],
        )
    },
    table("image_tags", &["image_id", "tag"], &[c("image_id", U), c("tag", T)]),
    table("image_properties", &["image_id", "key"], &[c("image_id", U), c("key", T), c("value", T)]),
    table(
        "image_members",
        &["image_id", "member"],
        &[c("image_id", U), c("member", T), c("status", T), c("created_at", TS), c("updated_at", TS)],
    ),
    table("image_resource_tags", &["image_id", "key"], &[c("image_id", U), c("key", T), c("value", T)]),
    Table {
        immutable: &["key_id", "wrapped_data_key"],
        ..table("image_encryption", &["image_id"], &[c("image_id", U), c("key_id", T), c("wrapped_data_key", T)])
    },
    table("image_favorites", &["user_id", "image_id"], &[c("user_id", T), c("image_id", U), c("added_at", TS)]),
    table(
        "nbd_exports",
        &["name_hash"],
        &[c("name_hash", T), c("image_id", U), c("created_by", T), c("created_at", TS), c("expires_at", TS)],
    ),
    table(
        "share_auto_accept",
        &["project_id", "from_project"],
        &[c("project_id", T), c("from_project", T), c("created_at", TS)],
    ),
    Table {
        self_parent: Some("parent_id"),
        immutable: &["job_type", "project_id", "created_at"],
        ..table(
            "jobs",
            &["id"],
            &[
                c("id", T), c("job_type", T), c("project_id", T), c("status", T), c("progress", R),
                c("entities", J), c("params", J), c("error_code", T), c("fail_reason", T), c("attempts", I),
                c("claimed_by", T), c("heartbeat_at", TS), c("created_at", TS), c("updated_at", TS),
                c("begin_time", TS), c("end_time", TS), c("run_after", TS), c("parent_id", T), c("result", J),
                c("cancel_requested", B),
            ],
        )
    },
    Table {
        identity: true,
        immutable: &["hash"],
        ..table(
            "audit_events",
            &["seq"],
            &[
                c("seq", I), c("at", TS), c("request_id", T), c("project_id", T), c("user_id", T), c("action", T),
                c("resource", T), c("result", T), c("detail", T), c("source_address", T), c("error", T),
                c("chain_position", I), c("prev_hash", T), c("hash", T),
            ],
        )
    },
    Table {
        immutable: &["project", "created_at"],
        ..table(
            "servers",
            &["id"],
            &[
                c("id", U), c("project", T), c("name", T), c("server_type", T), c("vcpus", I), c("ram_mb", I),
                c("architecture", T), c("status", T), c("image_id", U), c("created_at", TS), c("updated_at", TS),
                c("firmware", T),
            ],
        )
    },
    Table {
        immutable: &["project", "created_at"],
        ..table(
            "volumes",
            &["id"],
            &[
                c("id", U), c("project", T), c("name", T), c("size", I), c("manifest_id", T),
                c("source_image_id", U), c("bootable", B), c("encryption_key_id", T), c("wrapped_data_key", T),
                c("server_id", U), c("device_index", I), c("created_at", TS), c("updated_at", TS),
            ],
        )
    },
    table(
        "volume_exports",
        &["name_hash"],
        &[c("name_hash", T), c("volume_id", U), c("created_by", T), c("created_at", TS), c("expires_at", TS)],
    ),
    Table {
        immutable: &["image_id", "created_at"],
        unique: &["product_code"],
        ..table(
            "market_listings",
            &["id"],
            &[
                c("id", U), c("image_id", U), c("publisher", T), c("product_code", T), c("version", T),
                c("description", T), c("offshelved", B), c("created_at", TS), c("updated_at", TS),
            ],
        )
    },
    table(
        "market_subscriptions",
        &["listing_id", "project_id"],
        &[c("listing_id", U), c("project_id", T), c("since", TS)],
    ),
    table(
        "metadef_namespaces",
        &["namespace"],
        &[
            c("namespace", T), c("display_name", T), c("description", T), c("visibility", T), c("protected", B),
            c("owner", T), c("created_at", TS), c("updated_at", TS),
        ],
    ),
    metadef_entries("metadef_objects"),
    metadef_entries("metadef_properties"),
    metadef_entries("metadef_tags"),
    // The target's migrations seed the standard resource types: copied rows of those names are skipped.
    table(
        "metadef_resource_types",
        &["name"],
        &[c("name", T), c("protected", B), c("created_at", TS), c("updated_at", TS)],
    ),
    table(
        "metadef_namespace_resource_types",
        &["namespace", "resource_type"],
        &[
            c("namespace", T), c("resource_type", T), c("prefix", T), c("properties_target", T), c("created_at", TS),
            c("updated_at", TS),
        ],
    ),
];

/// Metadefs objects, properties and tags: one shape, a name within a namespace and a JSON body.
const fn metadef_entries(name: &'static str) -> Table {
    const COLUMNS: &[Column] = &[c("namespace", T), c("name", T), c("body", T), c("created_at", TS), c("updated_at", TS)];
    table(name, &["namespace", "name"], COLUMNS)
}

/// Tables of the schema that are deliberately not copied, with the reason.
pub const NOT_COPIED: &[(&str, &str)] = &[
    ("nodes", "each node of the target registers itself when it starts"),
    ("_sqlx_migrations", "the target's own migrations are applied before the copy"),
];

/// One value bound into a PostgreSQL statement, already converted to the target column's type.
#[derive(Debug, Clone, PartialEq)]
pub enum Bind {
    Text(Option<String>),
    /// Text cast by PostgreSQL to the named type (`uuid`, `jsonb`).
    Cast(Option<String>, &'static str),
    Int(Option<i64>),
    Small(Option<i16>),
    Bool(Option<bool>),
    Real(Option<f64>),
    Time(Option<DateTime<Utc>>),
}

/// One row, as the PostgreSQL columns of [`target_columns`] in order.
pub type Row = Vec<Bind>;

/// The PostgreSQL columns of `table`, in the order of the [`Bind`]s of its rows.
pub fn target_columns(table: &Table) -> Vec<String> {
    let mut out = Vec::new();
    for column in table.columns {
        out.push(column.name.to_string());
        if column.kind == ColumnKind::Time {
            out.push(format!("{}_ns", column.name));
        }
    }
    out
}

/// Converts one SQLite timestamp (RFC 3339) to the PostgreSQL form: the instant truncated to the
/// microsecond and the nanoseconds below it.
pub fn split_stored_time(text: &str) -> Result<(DateTime<Utc>, i16)> {
    let t = DateTime::parse_from_rfc3339(text)
        .map_err(|e| CatalogError::Invalid(format!("bad timestamp {text:?} in the source catalog: {e}")))?
        .with_timezone(&Utc);
    let below_micro = t.timestamp_subsec_nanos() % 1000;
    Ok((t - chrono::Duration::nanoseconds(i64::from(below_micro)), below_micro as i16))
}

/// How far the copy of one table got.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableCopy {
    pub table: &'static str,
    /// Source rows read so far.
    pub rows_read: u64,
    /// Rows inserted into the target (the others were there already).
    pub rows_inserted: u64,
}

/// Signs that the source is still in use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceActivity {
    /// Jobs waiting or running (`INIT`, `RUNNING`).
    pub unfinished_jobs: u64,
    /// The latest heartbeat of any node registered in the source.
    pub last_node_heartbeat: Option<DateTime<Utc>>,
}

/// Rows read from the source per page.
pub const PAGE_ROWS: u32 = 500;

/// Checks that `target` holds no data of another deployment: no row of [`TABLES`] with a key the source
/// has but different immutable values, and no unique value (project name, ...) under another key.
/// `Conflict` naming the first such row; reads only. Rows equal to the source's (from an earlier,
/// interrupted run) are fine.
pub async fn check_target(source: &SqliteCatalog, target: &PostgresCatalog) -> Result<()> {
    for table in TABLES.iter().filter(|t| !t.immutable.is_empty() || !t.unique.is_empty()) {
        for &pass in passes(table) {
            let mut after = 0;
            loop {
                let page = source.export_page(table, pass, after, PAGE_ROWS).await?;
                let Some((last, _)) = page.last() else { break };
                after = *last;
                let rows: Vec<Row> = page.into_iter().map(|(_, row)| row).collect();
                if let Some(what) = target.first_conflict(table, &rows).await? {
                    return Err(CatalogError::Conflict(format!(
                        "the target catalog already holds data of another deployment: {what}; \
                         migrate into an empty database"
                    )));
                }
            }
        }
    }
    Ok(())
}

/// Copies every table of [`TABLES`] from `source` into `target`, in order, `PAGE_ROWS` rows per
/// transaction, calling `progress` after every page. Rows whose key the target has already are left as
/// they are, so a rerun after an interruption completes the copy. Identity columns of the target are
/// advanced past the copied values. Call [`check_target`] first: this does not look for conflicts.
pub async fn copy_catalog(
    source: &SqliteCatalog,
    target: &PostgresCatalog,
    progress: &mut (dyn FnMut(&TableCopy) + Send),
) -> Result<Vec<TableCopy>> {
    let mut report = Vec::new();
    for table in TABLES {
        let mut copy = TableCopy { table: table.name, ..TableCopy::default() };
        for &pass in passes(table) {
            let mut after = 0;
            loop {
                let page = source.export_page(table, pass, after, PAGE_ROWS).await?;
                let Some((last, _)) = page.last() else { break };
                after = *last;
                let rows: Vec<Row> = page.into_iter().map(|(_, row)| row).collect();
                copy.rows_read += rows.len() as u64;
                copy.rows_inserted += target.import_rows(table, &rows).await?;
                progress(&copy);
            }
        }
        if table.identity {
            target.advance_identity(table).await?;
        }
        progress(&copy);
        report.push(copy);
    }
    Ok(report)
}

/// Which rows of a table one pass of the export reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    All,
    /// Rows whose self-referencing column is NULL.
    Roots,
    /// Rows whose self-referencing column is set.
    Children,
}

fn passes(table: &Table) -> &'static [Pass] {
    if table.self_parent.is_some() {
        &[Pass::Roots, Pass::Children]
    } else {
        &[Pass::All]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_split_at_the_microsecond() {
        let (at, ns) = split_stored_time("2024-01-02T03:04:05.123456789Z").unwrap();
        assert_eq!(at, DateTime::parse_from_rfc3339("2024-01-02T03:04:05.123456Z").unwrap());
        assert_eq!(ns, 789);
        assert!(split_stored_time("yesterday").is_err());
    }

    #[test]
    fn every_table_names_its_key_and_immutable_columns() {
        for table in TABLES {
            let names: Vec<&str> = table.columns.iter().map(|c| c.name).collect();
            for column in table.key.iter().chain(table.immutable).chain(table.unique).chain(table.self_parent.iter()) {
                assert!(names.contains(column), "{}.{column} is not a column", table.name);
            }
        }
    }
}
